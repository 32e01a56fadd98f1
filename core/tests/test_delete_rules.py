"""What a delete takes with it and what it keeps, as the seeds say.

Usage is kept for analytics (SET NULL); everything else an app user or a
chat owns goes with it (CASCADE); a Source that rows point to cannot go.
"""

import pytest
from django.db.models import ProtectedError

from chats.models import Chat, CodeExecution, Message, MessageFeedback, UploadedFile
from core.models import Organization, Source, UserTemplatePreference
from reports.models import AnalysisResult, DeepAnalysisReport
from usage.models import ModelUsage, QueryAnalytics

from .factories import (
    AnalysisResultFactory,
    AppUserFactory,
    ChatFactory,
    CodeExecutionFactory,
    DeepAnalysisReportFactory,
    MessageFactory,
    MessageFeedbackFactory,
    ModelUsageFactory,
    OrganizationFactory,
    QueryAnalyticsFactory,
    SourceFactory,
    UploadedFileFactory,
    UserTemplatePreferenceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def owned(org):
    """An app user with one of everything attached, and a bystander's chat."""
    user = AppUserFactory(organization=org)
    chat = ChatFactory(user=user, organization=org)
    question = MessageFactory(chat=chat, role="user")
    answer = MessageFactory(chat=chat, role="assistant")
    upload = UploadedFileFactory(chat=chat)
    usage = ModelUsageFactory(user=user, chat=chat)
    objects = {
        "user": user,
        "chat": chat,
        "question": question,
        "answer": answer,
        "feedback": MessageFeedbackFactory(message=answer, rating=2),
        "execution": CodeExecutionFactory(message=answer),
        "upload": upload,
        "result": AnalysisResultFactory(chat=chat, file=upload),
        "report": DeepAnalysisReportFactory(user=user),
        "preference": UserTemplatePreferenceFactory(user=user),
        "usage": usage,
        "analytics": QueryAnalyticsFactory(usage=usage, user=user),
        # Someone else's rows, which no delete here may touch.
        "other_chat": MessageFeedbackFactory().message.chat,
    }
    return objects


def test_deleting_app_user_removes_what_they_own(owned):
    owned["user"].delete()

    assert not Chat.objects.filter(pk=owned["chat"].pk).exists()
    assert not Message.objects.filter(chat_id=owned["chat"].pk).exists()
    assert not MessageFeedback.objects.filter(pk=owned["feedback"].pk).exists()
    assert not CodeExecution.objects.filter(pk=owned["execution"].pk).exists()
    assert not UploadedFile.objects.filter(pk=owned["upload"].pk).exists()
    assert not AnalysisResult.objects.filter(pk=owned["result"].pk).exists()
    assert not DeepAnalysisReport.objects.filter(pk=owned["report"].pk).exists()
    assert not UserTemplatePreference.objects.filter(pk=owned["preference"].pk).exists()
    # The bystander's chat, message and feedback are untouched.
    assert Chat.objects.filter(pk=owned["other_chat"].pk).exists()
    assert Message.objects.filter(chat=owned["other_chat"]).count() == 1
    assert MessageFeedback.objects.count() == 1


def test_deleting_app_user_keeps_usage_with_user_and_chat_null(owned):
    owned["user"].delete()

    usage = ModelUsage.objects.get(pk=owned["usage"].pk)
    assert (usage.user_id, usage.chat_id) == (None, None)
    # Spend per organisation survives the user's deletion.
    assert usage.organization_id == owned["user"].organization_id
    assert usage.cost == owned["usage"].cost
    analytics = QueryAnalytics.objects.get(pk=owned["analytics"].pk)
    assert analytics.user_id is None
    assert analytics.usage_id == usage.pk


def test_deleting_chat_keeps_usage_with_chat_null(owned):
    owned["chat"].delete()

    usage = ModelUsage.objects.get(pk=owned["usage"].pk)
    assert (usage.user_id, usage.chat_id) == (owned["user"].pk, None)
    assert not Message.objects.filter(pk=owned["answer"].pk).exists()
    assert not UploadedFile.objects.filter(pk=owned["upload"].pk).exists()
    assert not AnalysisResult.objects.filter(pk=owned["result"].pk).exists()


def test_deleting_message_removes_its_feedback_and_code_executions(owned):
    owned["answer"].delete()

    assert not MessageFeedback.objects.filter(pk=owned["feedback"].pk).exists()
    assert not CodeExecution.objects.filter(pk=owned["execution"].pk).exists()
    # The rest of the chat stays.
    assert list(Message.objects.filter(chat=owned["chat"]).values_list("pk", flat=True)) == [
        owned["question"].pk
    ]
    assert MessageFeedback.objects.count() == 1  # the bystander's


def test_deleting_uploaded_file_keeps_analysis_result_with_file_null(owned):
    owned["upload"].delete()

    result = AnalysisResult.objects.get(pk=owned["result"].pk)
    assert result.file_id is None
    assert result.chat_id == owned["chat"].pk


def test_deleting_organization_keeps_its_chats_with_organization_null(owned, org):
    org.delete()

    chat = Chat.objects.get(pk=owned["chat"].pk)
    assert chat.organization_id is None
    assert chat.user_id == owned["user"].pk
    assert not Organization.objects.filter(pk=org.pk).exists()


def test_deleting_source_that_rows_point_to_refused():
    source = SourceFactory()
    chat = ChatFactory(user=None, source=source, source_pk="7")

    with pytest.raises(ProtectedError):
        source.delete()

    assert Source.objects.filter(pk=source.pk).exists()
    assert Chat.objects.get(pk=chat.pk).source_id == source.pk


def test_deleting_source_without_rows_allowed():
    source = SourceFactory()

    source.delete()

    assert not Source.objects.filter(pk=source.pk).exists()
