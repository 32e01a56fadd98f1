"""manage.py purge: anonymous chats older than 90 days (the auto-analyst
seed's rule) and expired refresh tokens go, in batches, each batch in its
own transaction; everything else stays; the audit log says what went."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from chats.management.commands.purge import Command as PurgeCommand
from chats.models import Chat, CodeExecution, Message, MessageFeedback, UploadedFile
from core.models import AuditLog, RefreshToken
from core.tests import factories as f
from reports.models import AnalysisResult
from usage.models import ModelUsage

pytestmark = pytest.mark.django_db

HOUR = dt.timedelta(hours=1)


def days_ago(days, plus=dt.timedelta(0)):
    return timezone.now() - dt.timedelta(days=days) + plus


def purge(*args):
    out = StringIO()
    call_command("purge", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def old_anonymous_chat():
    """An anonymous chat 91 days old with something of everything attached."""
    chat = f.ChatFactory(user=None, created_at=days_ago(91))
    f.MessageFactory(chat=chat, role="user")
    answer = f.MessageFactory(chat=chat, role="assistant")
    f.MessageFeedbackFactory(message=answer)
    f.CodeExecutionFactory(message=answer, user=None)
    f.AnalysisResultFactory(chat=chat)  # and its uploaded file
    usage = f.ModelUsageFactory(user=None, chat=chat)
    return chat, usage


@pytest.fixture
def keepers():
    """Rows the purge must not touch, each just on the safe side of a rule."""
    return {
        "anonymous, 90 days less an hour": f.ChatFactory(user=None, created_at=days_ago(90, HOUR)),
        "anonymous, yesterday": f.ChatFactory(user=None, created_at=days_ago(1)),
        "a user's, 400 days old": f.ChatFactory(created_at=days_ago(400)),
        "token valid one more hour": f.RefreshTokenFactory(expires_at=timezone.now() + HOUR),
    }


def test_purge_deletes_old_anonymous_chats_and_expired_tokens_only(old_anonymous_chat, keepers):
    chat, usage = old_anonymous_chat
    just_over = f.ChatFactory(user=None, created_at=days_ago(90, -HOUR))
    expired = f.RefreshTokenFactory(expires_at=timezone.now() - HOUR)
    revoked_but_valid = f.RefreshTokenFactory(
        expires_at=timezone.now() + dt.timedelta(days=5), is_revoked=True
    )

    output = purge()

    assert not Chat.objects.filter(pk__in=[chat.pk, just_over.pk]).exists()
    assert not Message.objects.filter(chat=chat).exists()
    assert not MessageFeedback.objects.exists()
    assert not CodeExecution.objects.exists()
    assert not AnalysisResult.objects.exists()
    assert not UploadedFile.objects.exists()
    assert not RefreshToken.objects.filter(pk=expired.pk).exists()
    for name, row in keepers.items():
        assert type(row).objects.filter(pk=row.pk).exists(), name
    assert RefreshToken.objects.filter(pk=revoked_but_valid.pk).exists()
    # The ledger keeps the usage; only its link to the chat is gone.
    usage.refresh_from_db()
    assert usage.chat_id is None
    assert "Deleted 2 chats.Chat" in output
    assert "Deleted 2 chats.Message" in output
    assert "Deleted 1 core.RefreshToken" in output


def test_purge_records_the_counts_in_the_audit_log(old_anonymous_chat, keepers):
    f.RefreshTokenFactory(expires_at=timezone.now() - HOUR)

    purge()

    entry = AuditLog.objects.get(action="purge")
    assert entry.actor is None
    assert entry.new_values["days"] == 90
    assert entry.new_values["deleted"] == {
        "chats.Chat": 1,
        "chats.CodeExecution": 1,
        "chats.Message": 2,
        "chats.MessageFeedback": 1,
        "chats.UploadedFile": 1,
        "core.RefreshToken": 1,
        "reports.AnalysisResult": 1,
    }


def test_dry_run_counts_and_changes_nothing(old_anonymous_chat, keepers):
    f.RefreshTokenFactory(expires_at=timezone.now() - HOUR)
    chats_before, tokens_before = Chat.objects.count(), RefreshToken.objects.count()

    output = purge("--dry-run")

    assert (Chat.objects.count(), RefreshToken.objects.count()) == (chats_before, tokens_before)
    assert "Would delete 1 chats.Chat" in output
    assert "Would delete 2 chats.Message" in output
    assert "Would delete 1 core.RefreshToken" in output
    assert not AuditLog.objects.filter(action="purge").exists()


def test_purge_works_in_batches_each_in_its_own_transaction(monkeypatch):
    for _ in range(5):
        f.ChatFactory(user=None, created_at=days_ago(100))
    for _ in range(3):
        f.RefreshTokenFactory(expires_at=timezone.now() - HOUR)
    batches = []
    real_delete = PurgeCommand._delete_batch

    def counting_delete(rows):
        batches.append(rows.count())
        return real_delete(rows)

    monkeypatch.setattr(PurgeCommand, "_delete_batch", staticmethod(counting_delete))

    output = purge("--batch-size", "2")

    # chats: 2 + 2 + 1; tokens: 2 + 1
    assert batches == [2, 2, 1, 2, 1]
    assert not Chat.objects.exists()
    assert not RefreshToken.objects.exists()
    assert "Deleted 5 chats.Chat" in output
    assert "Deleted 3 core.RefreshToken" in output


def test_dry_run_pages_through_every_batch():
    for _ in range(5):
        f.ChatFactory(user=None, created_at=days_ago(100))

    output = purge("--dry-run", "--batch-size", "2")

    assert "Would delete 5 chats.Chat" in output
    assert Chat.objects.count() == 5


def test_days_option_moves_the_boundary():
    forty = f.ChatFactory(user=None, created_at=days_ago(40))
    twenty = f.ChatFactory(user=None, created_at=days_ago(20))

    purge("--days", "30")

    assert not Chat.objects.filter(pk=forty.pk).exists()
    assert Chat.objects.filter(pk=twenty.pk).exists()
    assert AuditLog.objects.get(action="purge").new_values["days"] == 30


def test_a_second_run_finds_nothing(old_anonymous_chat):
    purge()

    output = purge()

    assert output.startswith("Deleted nothing")
    assert AuditLog.objects.filter(action="purge").count() == 2
    assert AuditLog.objects.filter(action="purge").order_by("-pk")[0].new_values["deleted"] == {}


@pytest.mark.parametrize("args", [["--days", "0"], ["--batch-size", "-1"], ["--days", "x"]])
def test_bad_arguments_are_refused(args):
    with pytest.raises(CommandError):
        call_command("purge", *args)


def test_purge_keeps_usage_totals_unchanged(old_anonymous_chat):
    from django.db.models import Sum

    before = ModelUsage.objects.aggregate(total=Sum("cost"))["total"]

    purge()

    assert ModelUsage.objects.aggregate(total=Sum("cost"))["total"] == before
