"""One write function per ingest endpoint, and the helpers they share.

Each takes the key's source and the validated items. It first checks what
pydantic cannot (duplicate ids in the batch, references to rows the source
never sent, values another row holds) and refuses the whole batch if any
item fails; otherwise it writes every item in one transaction. Rows are
matched by (source, client id = source_pk): an item sent again unchanged is
left alone, a changed one is updated.
"""

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Lower

from chats.models import Chat, Message, MessageFeedback
from chats.summaries import refresh_chat_summaries
from core.models import AppUser, Organization
from ingest.upsert import upsert_by_source
from usage.ledger import upsert_usage
from usage.models import ModelUsage

from .errors import Refusals
from .schemas import AppUserIn

# ---- shared helpers ----------------------------------------------------------


def _pks(model, source, source_pks):
    """{source_pk: pk} of the rows of ``source`` among ``source_pks``."""
    source_pks = {s for s in source_pks if s is not None}
    if not source_pks:
        return {}
    rows = model.objects.filter(source=source, source_pk__in=source_pks)
    return dict(rows.values_list("source_pk", "pk"))


def _check_unique(refusals, paths_values, what="id"):
    """Refuse the second and later items that carry a value already seen."""
    first = {}
    for path, value in paths_values:
        if value in first:
            refusals.add(path, f"duplicate {what} {value!r} (also at {first[value]})", "duplicate")
        else:
            first[value] = path


def _check_known(refusals, path, value, known, what):
    if value is not None and value not in known:
        refusals.add(
            path, f"unknown {what} id {value!r}: this source never sent it", "unknown_reference"
        )


def _counts(created=0, updated=0, unchanged=0):
    return {"created": created, "updated": updated, "unchanged": unchanged}


def _upsert(model, source, rows):
    """Create or update rows of ``source`` by source_pk (``ingest.upsert``).

    ``rows`` maps source_pk to field values. Returns the counts and
    {source_pk: pk} of every row.
    """
    states = upsert_by_source(model, source, rows, batch_size=500)
    counts = _counts()
    for state, _ in states.values():
        counts[state] += 1
    return counts, {source_pk: pk for source_pk, (_, pk) in states.items()}


# ---- POST /usage -------------------------------------------------------------

LEDGER_FIELDS = {
    "model_name",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "query_size",
    "response_size",
    "cost",
    "timestamp",
    "is_streaming",
    "request_time_ms",
}


@transaction.atomic
def write_usage(source, items):
    """Usage records into the ledger, through usage.ledger.upsert_usage."""
    refusals = Refusals()
    _check_unique(refusals, [(f"items.{n}.id", item.id) for n, item in enumerate(items)])
    users = _pks(AppUser, source, [item.user_id for item in items])
    chats = _pks(Chat, source, [item.chat_id for item in items])
    for n, item in enumerate(items):
        _check_known(refusals, f"items.{n}.user_id", item.user_id, users, "app user")
        _check_known(refusals, f"items.{n}.chat_id", item.chat_id, chats, "chat")
    refusals.raise_if_any()
    rows = [
        ModelUsage(
            source_pk=item.id,
            user_id=users.get(item.user_id),
            chat_id=chats.get(item.chat_id),
            total_tokens=item.total_tokens,
            cost_source=(
                ModelUsage.CostSource.COMPUTED
                if item.cost is None
                else ModelUsage.CostSource.REPORTED
            ),
            **item.model_dump(include=LEDGER_FIELDS),
        )
        for item in items
    ]
    result = upsert_usage(source, rows)
    return _counts(*(len(result[k]) for k in ("created", "updated", "unchanged")))


# ---- POST /chats -------------------------------------------------------------


def _user_key(user):
    return user.id if isinstance(user, AppUserIn) else user


def _check_user_values(refusals, source, users, paths):
    """Refuse app users whose e-mail (any case) or username another app user holds."""
    for field, fold in (("email", Lower("email")), ("username", F("username"))):
        wanted = {}
        for source_pk, user in users.items():
            value = getattr(user, field)
            if value is not None:
                wanted[source_pk] = value.lower() if field == "email" else value
        holders = {
            value: (source_id, source_pk)
            for value, source_id, source_pk in AppUser.objects.annotate(folded=fold)
            .filter(folded__in=set(wanted.values()))
            .values_list("folded", "source_id", "source_pk")
        }
        claimed = {}
        for source_pk, value in wanted.items():
            holder = holders.get(value)
            other = claimed.setdefault(value, source_pk)
            if (holder and holder != (source.pk, source_pk)) or other != source_pk:
                refusals.add(
                    f"{paths[source_pk]}.{field}",
                    f"{field} {value!r} belongs to another app user",
                    "conflict",
                )


def _organizations(source, slugs):
    """{slug: pk, or None when the organisation is another source's}.

    An organisation is the source's when its ``source`` is the key's source;
    one imported from another application, or made in the admin (no source),
    is not, and an item naming it is refused (``_check_organizations``).
    """
    if not slugs:
        return {}
    found = Organization.objects.filter(slug__in=slugs).values_list("slug", "pk", "source_id")
    return {slug: pk if source_id == source.pk else None for slug, pk, source_id in found}


def _check_organizations(refusals, items, found):
    for n, chat in enumerate(items):
        if chat.organization in found and found[chat.organization] is None:
            refusals.add(
                f"items.{n}.organization",
                f"organization {chat.organization!r} is not this source's: "
                "a source may only name the organisations it created",
                "forbidden_reference",
            )


def _create_organizations(source, slugs, found):
    """{slug: pk} of every slug, creating the organisations no one has created yet."""
    new = [
        Organization(source=source, source_pk=slug, slug=slug, name=slug)
        for slug in sorted(slugs - found.keys())
    ]
    Organization.objects.bulk_create(new)
    return found | {org.slug: org.pk for org in new}


@transaction.atomic
def write_chats(source, items):
    """Chats with their messages, creating or updating the app users sent as objects."""
    refusals = Refusals()
    _check_unique(refusals, [(f"items.{n}.id", chat.id) for n, chat in enumerate(items)])
    _check_unique(
        refusals,
        [
            (f"items.{n}.messages.{m}.id", message.id)
            for n, chat in enumerate(items)
            for m, message in enumerate(chat.messages)
        ],
        what="message id",
    )
    users, user_paths = {}, {}
    for n, chat in enumerate(items):
        if isinstance(chat.user, AppUserIn):
            users[chat.user.id] = chat.user
            user_paths[chat.user.id] = f"items.{n}.user"
    known_users = _pks(AppUser, source, {c.user for c in items if isinstance(c.user, str)})
    for n, chat in enumerate(items):
        if isinstance(chat.user, str) and chat.user not in users:
            _check_known(refusals, f"items.{n}.user", chat.user, known_users, "app user")
    _check_user_values(refusals, source, users, user_paths)
    slugs = {chat.organization for chat in items if chat.organization}
    orgs = _organizations(source, slugs)
    _check_organizations(refusals, items, orgs)
    refusals.raise_if_any()

    user_counts, user_pks = _upsert(
        AppUser,
        source,
        {pk: user.model_dump(exclude_unset=True, exclude={"id"}) for pk, user in users.items()},
    )
    user_pks = known_users | user_pks
    org_pks = _create_organizations(source, slugs, orgs)
    chat_counts, chat_pks = _upsert(
        Chat,
        source,
        {
            chat.id: {
                "user_id": user_pks.get(_user_key(chat.user)),
                "organization_id": org_pks.get(chat.organization),
                "title": chat.title,
                "created_at": chat.created_at,
                "updated_at": chat.updated_at,
            }
            for chat in items
        },
    )
    message_counts, _ = _upsert(
        Message,
        source,
        {
            message.id: {"chat_id": chat_pks[chat.id], **message.model_dump(exclude={"id"})}
            for chat in items
            for message in chat.messages
        },
    )
    refresh_chat_summaries(chat_pks.values())
    return {**chat_counts, "messages": message_counts, "users": user_counts}


# ---- POST /feedback ----------------------------------------------------------


@transaction.atomic
def write_feedback(source, items):
    """Ratings of messages the source sent before; one feedback per message."""
    refusals = Refusals()
    _check_unique(refusals, [(f"items.{n}.id", item.id) for n, item in enumerate(items)])
    _check_unique(
        refusals,
        [(f"items.{n}.message_id", item.message_id) for n, item in enumerate(items)],
        what="message_id",
    )
    messages = _pks(Message, source, [item.message_id for item in items])
    holders = {
        message_pk: (source_id, source_pk)
        for message_pk, source_id, source_pk in MessageFeedback.objects.filter(
            message_id__in=messages.values()
        ).values_list("message_id", "source_id", "source_pk")
    }
    for n, item in enumerate(items):
        path = f"items.{n}.message_id"
        _check_known(refusals, path, item.message_id, messages, "message")
        holder = holders.get(messages.get(item.message_id))
        if holder and holder != (source.pk, item.id):
            refusals.add(
                path, f"message {item.message_id!r} already has another feedback", "conflict"
            )
    refusals.raise_if_any()
    counts, _ = _upsert(
        MessageFeedback,
        source,
        {
            item.id: {
                "message_id": messages[item.message_id],
                **item.model_dump(exclude={"id", "message_id"}),
            }
            for item in items
        },
    )
    return counts
