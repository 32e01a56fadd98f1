"""AI Chat v2: users, sessions and messages whose assistant replies carry AI
metadata (persona, tone, behaviour, confidence or signal strength…), a few
flagged as mistakes; every reply with tokens gets a ledger row priced from
ModelPrice."""

import itertools
from dataclasses import dataclass
from datetime import timedelta

from chats.models import Chat, Message
from core.models import AppUser, Source

from . import catalog

AIC = Source.Kind.AI_CHAT_V2
USER, ASSISTANT = Message.Role.USER, Message.Role.ASSISTANT
BEHAVIORS = {"normal": 80, "cautious": 20}
# Share of the window before AI Core v2.0 (tone, behaviour) and v2.1 (signal
# strength, context clarity, needs knowledge) were deployed.
V20_FROM, V21_FROM = 0.3, 0.55


@dataclass
class Member:
    user: AppUser
    llm: catalog.LLM
    activity: float


@dataclass
class Reply:
    question: str
    answer: str
    context_type: str
    gap: float
    prompt: int
    completion: int
    ms: int


def make_users(ctx):
    source = ctx.sources[AIC]
    members = []
    for _ in range(ctx.count("aic_users")):
        first, last = ctx.people.name()
        org = ctx.organization() if ctx.chance(0.25) else None
        domain = ctx.org_domains[org.slug] if org else ctx.weighted(catalog.PUBLIC_EMAIL_DOMAINS)
        created = ctx.signup_time()
        user = AppUser(
            source=source,
            source_pk=ctx.uuid(),
            organization=org,
            email=ctx.people.email(first, last, domain),
            full_name=f"{first} {last}",
            password_hash=ctx.bcrypt_like(),
            is_active=not ctx.chance(0.04),
            created_at=created,
            updated_at=ctx.clock.at(created) if ctx.chance(0.3) else created,
        )
        ctx.writer.add(user)
        llm = ctx.models[ctx.weighted(catalog.AIC_MODEL_WEIGHTS)]
        members.append(Member(user, llm, ctx.rng.paretovariate(1.3)))
    return members


def make_chats(ctx, members):
    source = ctx.sources[AIC]
    cumulative = list(itertools.accumulate(m.activity * ctx.active_share(m.user) for m in members))
    total = ctx.count("aic_chats")
    with ctx.progress(total, "AI Chat v2 sessions", "session") as bar:
        for _ in range(total):
            member = members[ctx.rng.choices(range(len(members)), cum_weights=cumulative)[0]]
            write_chat(ctx, source, member)
            bar.update()
            ctx.writer.maybe_flush()


def plan_replies(ctx, topic, llm):
    rng = ctx.rng
    size = len(topic["turns"])
    turns = list(topic["turns"][: rng.randint(max(1, size - 1), size)])
    fill = {"short": rng.choice(catalog.AIC_SHORT), "pitfall": rng.choice(catalog.AIC_PITFALLS)}
    for question, answer in rng.sample(catalog.AIC_FOLLOW_UPS, rng.choice([0, 1, 1, 2, 3])):
        turns.append((question, answer.format(**fill)))
    replies, history = [], 0
    for number, (question, answer) in enumerate(turns):
        history += len(question) // 4
        completion = max(12, len(answer) // 4 + rng.randint(0, 60))
        replies.append(
            Reply(
                question=question,
                answer=answer,
                context_type=topic["context"] if number == 0 else "follow_up",
                gap=0.0 if number == 0 else min(rng.lognormvariate(4.0, 0.8), 1800),
                prompt=320 + history + rng.randint(0, 80),
                completion=completion,
                ms=ctx.request_ms(llm, completion),
            )
        )
        history += completion
    return replies


def ai_metadata(ctx, moment, context_type):
    """The AI Core fields of the version deployed at ``moment``."""
    rng = ctx.rng
    share = (moment - ctx.start) / (ctx.anchor - ctx.start)
    fields = {"persona": rng.choice(catalog.AIC_PERSONAS), "context_type": context_type}
    if share < V20_FROM:
        fields["confidence"] = round(rng.betavariate(6, 2), 3)
        return fields
    fields["tone"] = rng.choice(catalog.AIC_TONES)
    fields["behavior"] = ctx.weighted(BEHAVIORS)
    if share < V21_FROM:
        fields["confidence"] = round(rng.betavariate(6, 2), 3)
        return fields
    signal = round(rng.betavariate(5, 2), 3)
    fields["signal_strength"] = signal
    fields["context_clarity"] = signal > 0.45 and not ctx.chance(0.1)
    fields["needs_knowledge"] = context_type in ("general", "data_analysis") and ctx.chance(0.3)
    return fields


def write_chat(ctx, source, member):
    rng = ctx.rng
    user, llm = member.user, member.llm
    if ctx.chance(0.1):
        llm = ctx.models[ctx.weighted(catalog.AIC_MODEL_WEIGHTS)]
    topic = rng.choice(catalog.AIC_TOPICS)
    replies = plan_replies(ctx, topic, llm)
    duration = sum(r.gap + r.ms / 1000 + 1 for r in replies) + 60
    start = ctx.clock.at(
        user.created_at + timedelta(minutes=5), ctx.anchor - timedelta(seconds=duration)
    )
    chat = ctx.writer.add(
        Chat(
            source=source,
            source_pk=ctx.uuid(),
            user=user,
            organization=user.organization,
            title=topic["title"],
            created_at=start,
        )
    )
    moment = start
    for reply in replies:
        moment += timedelta(seconds=reply.gap)
        moment = write_reply(ctx, source, chat, llm, reply, moment)
    chat.last_message_at = chat.updated_at = moment
    chat.message_count = 2 * len(replies)


def write_reply(ctx, source, chat, llm, reply, moment):
    """The user's message, the assistant's with metadata, and its ledger row."""
    rng = ctx.rng
    ctx.writer.add(
        Message(
            source=source,
            source_pk=ctx.uuid(),
            chat=chat,
            role=USER,
            content=reply.question,
            created_at=moment,
        )
    )
    answered = moment + timedelta(seconds=reply.ms / 1000 + 0.2)
    metadata = ai_metadata(ctx, answered, reply.context_type)
    # the first AI Core release did not always record tokens
    tracked = "tone" in metadata or not ctx.chance(0.12)
    mistake = ctx.chance(0.03 * (1.3 if llm.quality < 4.2 else 0.5))
    answer = ctx.writer.add(
        Message(
            source=source,
            source_pk=ctx.uuid(),
            chat=chat,
            role=ASSISTANT,
            content=reply.answer,
            model_name=llm.name,
            prompt_tokens=reply.prompt if tracked else None,
            completion_tokens=reply.completion if tracked else None,
            is_mistake=mistake,
            mistake_note=rng.choice(catalog.AIC_MISTAKE_NOTES) if mistake else None,
            created_at=answered,
            **metadata,
        )
    )
    if tracked:
        ctx.add_usage(
            source=source,
            source_pk=answer.source_pk,
            user=chat.user,
            chat=chat,
            organization=chat.organization,
            model_name=llm.name,
            provider=llm.provider,
            prompt_tokens=reply.prompt,
            completion_tokens=reply.completion,
            query_size=len(reply.question),
            response_size=len(reply.answer),
            timestamp=answered,
            request_time_ms=None,
        )
    return answered
