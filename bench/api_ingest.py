"""A steady ingest API client: POST /api/v1/usage at a fixed rate of ledger rows.

Sends ``--batch`` usage records at a time, ``--rate`` records a second in
all, for ``--seconds`` seconds, from ``--clients`` threads each with its own
kept-alive HTTP connection (so one slow answer does not hold the rate), to the running
site at ``--url`` with the key ``--key`` (usage:write). A share
(``--update-share``) of each batch re-sends ids of earlier batches with other
token counts, so the writes are inserts and updates of the same ids, as a
retrying client's are. Prints what it achieved: rows/s, the batches'
median and p99 latency and every non-200 answer.

    .venv/bin/python bench/api_ingest.py --url http://127.0.0.1:8765 --key ak_… \\
        --rate 1000 --seconds 60

bench/scale_bench.py runs it beside wrk; it needs nothing but the standard
library.
"""

import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

MODELS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("claude-3-5-haiku-latest", "anthropic"),
    ("claude-sonnet-4-20250514", "anthropic"),
    ("gemini-2.0-flash", "google"),
    ("llama-3.3-70b-versatile", "groq"),
]


def record(rng, number, prefix):
    model, provider = rng.choice(MODELS)
    moment = datetime.now(UTC) - timedelta(seconds=rng.randint(0, 3600))
    return {
        "id": f"{prefix}-{number}",
        "model_name": model,
        "provider": provider,
        "prompt_tokens": rng.randint(100, 5000),
        "completion_tokens": rng.randint(20, 1500),
        "timestamp": moment.isoformat(),
        "request_time_ms": rng.randint(200, 6000),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=float, default=1000, help="ledger rows per second")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--update-share", type=float, default=0.2)
    parser.add_argument("--prefix", default=f"ingest-{int(time.time())}")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()

    parts = urlsplit(args.url)
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    started = time.monotonic()
    deadline = started + args.seconds
    results = [None] * args.clients

    def client(number):
        # Each client its own connection, ids and share of the rate.
        connect = partial(http.client.HTTPConnection, parts.hostname, parts.port or 80, timeout=60)
        connection = connect()
        rng = random.Random(7 + number)
        prefix = f"{args.prefix}-{number}"
        interval = args.batch * args.clients / args.rate
        sent = next_number = 0
        latencies, failures = [], {}
        due = started + interval * number / args.clients
        while due < deadline:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            # ids unique within a batch (the API refuses a batch naming one twice)
            updates = min(int(args.batch * args.update_share), next_number)
            items = [record(rng, n, prefix) for n in rng.sample(range(next_number), updates)]
            items += [record(rng, next_number + i, prefix) for i in range(args.batch - updates)]
            next_number += args.batch - updates
            body = json.dumps({"items": items})
            before = time.monotonic()
            try:
                connection.request("POST", "/api/v1/usage", body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                connection.close()
                connection = connect()
            latencies.append((time.monotonic() - before) * 1000)
            if status == 200:
                sent += len(items)
            else:
                failures[str(status)] = failures.get(str(status), 0) + 1
            due += interval
        results[number] = (sent, latencies, failures)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = sum(r[0] for r in results)
    latencies = [ms for r in results for ms in r[1]]
    failures = {}
    for r in results:
        for status, count in r[2].items():
            failures[status] = failures.get(status, 0) + count
    elapsed = time.monotonic() - started
    latencies.sort()
    result = {
        "rows_per_s": round(sent / elapsed, 1),
        "target_rows_per_s": args.rate,
        "batches": len(latencies),
        "batch_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "batch_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1)
        if latencies
        else None,
        "failures": failures,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"ingest: {result['rows_per_s']:,} rows/s of {args.rate:,.0f} wanted, "
            f"{result['batches']} batches of {args.batch}, p50 {result['batch_p50_ms']} ms, "
            f"p99 {result['batch_p99_ms']} ms, failures {failures or 'none'}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
