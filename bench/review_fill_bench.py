"""Review-queue fill benchmark (#19): the backlog and rows as they arrive.

Creates a throwaway PostgreSQL database (default ``aa_reviewbench``, dropped
and created, migrated), writes N chats of a question and an answer (every
answer rated, one in five with a failed code run, one in ten with an SQL
error, a ledger row per chat), one queue per rule, then prints:

- the backlog fill (``queues.fill_all``) in seconds and items per second,
- the same fill again (idempotent: adds nothing) in seconds,
- 500 new answers written with bulk_create, the fill at commit in seconds.

    .venv/bin/python bench/review_fill_bench.py --chats 20000

Nothing here touches the project's own database.
"""

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (DEBUG off, a throwaway SECRET_KEY)

sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=20_000)
    parser.add_argument("--db", default="aa_reviewbench")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}"')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    os.environ["DATABASE_URL"] = f"{args.server}/{args.db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analyst_admin.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from chats import queues
    from chats.models import Chat, CodeExecution, Message, MessageFeedback, ReviewQueue
    from usage.models import ModelUsage

    call_command("migrate", verbosity=0)
    rules = [
        {"rule": "low_rating", "max_rating": 2},
        {"rule": "failed_code"},
        {"rule": "sql_error"},
        {"rule": "ai_flag", "confidence_below": 0.3},
        {"rule": "chat_cost", "min_chat_cost": Decimal("0.05")},
        {"rule": "sample", "sample_percent": Decimal(5)},
    ]

    def write(n, offset):
        chats = Chat.objects.bulk_create(
            [Chat(title=f"Chat {offset + i}") for i in range(n)], batch_size=2000
        )
        msgs = []
        for i, chat in enumerate(chats):
            k = offset + i
            msgs.append(Message(chat=chat, role="user", content=f"Question {k}"))
            msgs.append(
                Message(
                    chat=chat,
                    role="assistant",
                    content=f"Answer {k}",
                    model_name=("gpt-4o", "claude", "gemini")[k % 3],
                    error_message="no such column" if k % 10 == 0 else None,
                    confidence=(k % 100) / 100,
                )
            )
        Message.objects.bulk_create(msgs, batch_size=2000)
        answers = msgs[1::2]
        MessageFeedback.objects.bulk_create(
            [MessageFeedback(message=m, rating=1 + k % 5) for k, m in enumerate(answers)],
            batch_size=2000,
        )
        CodeExecution.objects.bulk_create(
            [
                CodeExecution(message=m, chat_id=m.chat_id, is_successful=False)
                for k, m in enumerate(answers)
                if k % 5 == 0
            ],
            batch_size=2000,
        )
        ModelUsage.objects.bulk_create(
            [
                ModelUsage(
                    chat=chat,
                    model_name="gpt-4o",
                    provider="openai",
                    cost=Decimal(i % 10) / 100,
                )
                for i, chat in enumerate(chats)
            ],
            batch_size=2000,
        )

    started = time.perf_counter()
    write(args.chats, 0)  # no queue yet: the hooks find none
    took = time.perf_counter() - started
    print(f"wrote {args.chats} chats ({2 * args.chats} messages) in {took:.1f} s")
    for n, rule in enumerate(rules):
        ReviewQueue.objects.create(name=f"Queue {n} {rule['rule']}", **rule)

    total, took = 0, 0.0
    for queue in ReviewQueue.objects.order_by("pk"):
        started = time.perf_counter()
        added = queues.fill(queue)
        spent = time.perf_counter() - started
        started = time.perf_counter()
        again = queues.fill(queue)
        spent_again = time.perf_counter() - started
        total, took = total + added, took + spent
        print(
            f"  {queue.name}: {added} items in {spent:.2f} s; again: {again} in {spent_again:.2f} s"
        )
    print(f"backlog fill: {total} items in {took:.2f} s ({total / took:,.0f} items/s)")

    ReviewQueue.objects.update(is_active=False)
    started = time.perf_counter()
    with transaction.atomic():
        write(500, args.chats)
    print(f"500 new chats written, no active queue: {time.perf_counter() - started:.2f} s")
    ReviewQueue.objects.update(is_active=True)
    before = sum(q.items.count() for q in ReviewQueue.objects.all())
    started = time.perf_counter()
    with transaction.atomic():
        write(500, args.chats + 500)
    took = time.perf_counter() - started
    after = sum(q.items.count() for q in ReviewQueue.objects.all())
    print(f"500 new chats written and filled at commit: {took:.2f} s ({after - before} items)")


if __name__ == "__main__":
    main()
