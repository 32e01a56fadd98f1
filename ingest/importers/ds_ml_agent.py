"""The multi-tenant DS-ML agent (seeds/ds-ml-agent-schema.md): sessions with
an ``org_id``, conversation turns, uploaded files, analysis results.

The source has no organisation or user tables: a session's ``org_id``
becomes a ``core.Organization`` (slug = org_id, shared by every source that
names it) and its ``user_id`` string an ``AppUser`` of this source
(source_pk = user_id, no username) attached to that organisation.
"""

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug

from chats.models import Chat, Message, UploadedFile
from core.models import AppUser, Organization
from reports.models import AnalysisResult

from .converters import boolean, integer, json_value, timestamp
from .spec import Col, Fk, Mapping, Table


def organization_name(org_id):
    """'org_acme_corp' → 'Acme Corp'."""
    name = org_id.removeprefix("org_").removeprefix("org-")
    return name.replace("_", " ").replace("-", " ").strip().title() or org_id


def organization_for(org_id, values):
    try:
        validate_slug(org_id)
    except ValidationError:
        raise ValueError(f"not a slug (letters, digits, - and _ only): {org_id!r}") from None
    return Organization(slug=org_id, source_pk=org_id, name=organization_name(org_id))


def app_user_for(user_id, values):
    return AppUser(source_pk=user_id, username=None, organization_id=values.get("organization_id"))


def split_turn(source_pk, values):
    """A turn is the user's message and, once answered, the agent's reply."""
    reply = values.pop("_agent_response")
    yield f"{source_pk}:user", {**values, "role": Message.Role.USER}
    if reply is not None:
        yield (
            f"{source_pk}:assistant",
            {**values, "role": Message.Role.ASSISTANT, "content": reply},
        )


MAPPING = Mapping(
    kind="ds_ml_agent",
    identifying=("chatbot_sessions", "chatbot_conversation_states"),
    tables=(
        Table(
            "chatbot_sessions",
            Chat,
            pk="id",
            updated_at="updated_at",
            columns={
                # org first: the implied app user joins the session's organisation.
                "org_id": Fk("organization", Organization, by="slug", create=organization_for),
                "user_id": Fk("user", AppUser, create=app_user_for),
                "starred": Col("starred", boolean),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
                "expires_at": Col("expires_at", timestamp),
                "is_active": Col("is_active", boolean),
                "session_metadata": Col("metadata", json_value),
            },
        ),
        Table(
            "chatbot_conversation_states",
            Message,
            pk="id",
            defining=frozenset({"user_message"}),
            columns={
                "session_id": Fk("chat", Chat),
                "turn_number": Col("turn_number", integer),
                "user_message": Col("content"),
                "agent_response": Col("_agent_response"),
                "agent_type": Col("agent_type"),
                "created_at": Col("created_at", timestamp),
                "context_data": Col("context_data", json_value),
            },
            split=split_turn,
        ),
        Table(
            "chatbot_uploaded_files",
            UploadedFile,
            pk="id",
            columns={
                "session_id": Fk("chat", Chat),
                "filename": Col("filename"),
                "file_path": Col("file_path"),
                "file_type": Col("file_type"),
                "file_size": Col("file_size", integer),
                "upload_timestamp": Col("upload_timestamp", timestamp),
                "is_processed": Col("is_processed", boolean),
                "file_metadata": Col("file_metadata", json_value),
            },
        ),
        Table(
            "chatbot_analysis_results",
            AnalysisResult,
            pk="id",
            columns={
                "session_id": Fk("chat", Chat),
                "analysis_type": Col("analysis_type"),
                "file_id": Fk("file", UploadedFile),
                "result_data": Col("result_data", json_value),
                "visualizations": Col("visualizations", json_value),
                "created_at": Col("created_at", timestamp),
                "result_metadata": Col("result_metadata", json_value),
            },
        ),
    ),
)
