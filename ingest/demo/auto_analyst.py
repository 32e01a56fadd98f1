"""Auto-Analyst: users, chats whose answers come from several agents, one
ledger row per LLM call, code executions, feedback and template preferences."""

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from chats.models import Chat, CodeExecution, Message, MessageFeedback
from core.models import AppUser, Source, UserTemplatePreference

from . import catalog, texts

AA = Source.Kind.AUTO_ANALYST
USER, ASSISTANT = Message.Role.USER, Message.Role.ASSISTANT
INTENT_WEIGHTS = {intent: weight for intent, (weight, _) in catalog.AA_INTENTS.items()}
TEMPERATURES = {0.0: 10, 0.1: 8, 0.2: 12, 0.3: 6, 0.5: 5, 0.7: 8, 1.0: 3}
MAX_TOKENS = {1000: 10, 2000: 16, 4000: 12, 6000: 6, 8000: 4, 16000: 2}
# In the first part of the window the app did not report costs yet.
COSTLESS_SHARE = 0.2


@dataclass
class Profile:
    """How an app user uses Auto-Analyst (not stored)."""

    llm: catalog.LLM
    activity: float
    free_tier: bool = False
    temperature: float = 0.2
    max_tokens: int = 2000


@dataclass
class Call:
    prompt: int
    completion: int
    ms: int
    streaming: bool


@dataclass
class Run:
    """A code execution of an answer."""

    ok: bool
    initial: str
    latest: str
    output: str
    failed_agents: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)


@dataclass
class Exchange:
    """A question and its answer, planned before the times are known."""

    question: str
    answer: str
    calls: list
    gap: float  # seconds of thinking before the question
    run: Run | None
    feedback: bool

    @property
    def busy(self):
        return 0.5 + sum(call.ms / 1000 + 0.4 for call in self.calls)


def new_profile(ctx):
    return Profile(
        llm=ctx.models[ctx.weighted(catalog.AA_MODEL_WEIGHTS)],
        activity=ctx.rng.paretovariate(1.3),
        free_tier=ctx.chance(0.12),
        temperature=ctx.weighted(TEMPERATURES),
        max_tokens=ctx.weighted(MAX_TOKENS),
    )


def make_users(ctx):
    source = ctx.sources[AA]
    users, profiles = [], []
    for _ in range(ctx.count("aa_users")):
        first, last = ctx.people.name()
        org = ctx.organization() if ctx.chance(0.4) else None
        domain = ctx.org_domains[org.slug] if org else ctx.weighted(catalog.PUBLIC_EMAIL_DOMAINS)
        user = AppUser(
            source=source,
            source_pk=ctx.pk(AA, "users"),
            organization=org,
            username=ctx.people.username(first, last),
            email=ctx.people.email(first, last, domain),
            created_at=ctx.signup_time(),
        )
        users.append(ctx.writer.add(user))
        profiles.append(new_profile(ctx))
    return users, profiles


def make_preferences(ctx, users, templates):
    """Template preferences for most users: unique per (user, template)."""
    source = ctx.sources[AA]
    for index, user in enumerate(users):
        if index and not ctx.chance(0.65):
            continue
        picks = ctx.rng.sample(templates, ctx.rng.randint(2, min(6, len(templates))))
        for template in picks:
            created = ctx.clock.at(user.created_at)
            used = ctx.rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 40])
            ctx.writer.add(
                UserTemplatePreference(
                    source=source,
                    source_pk=ctx.pk(AA, "user_template_preferences"),
                    user=user,
                    template=template,
                    is_enabled=template.is_active and not ctx.chance(0.15),
                    usage_count=used,
                    last_used_at=ctx.clock.at(created) if used else None,
                    created_at=created,
                )
            )


def make_chats(ctx, users, profiles):
    source = ctx.sources[AA]
    weights = [
        profile.activity * ctx.active_share(user)
        for user, profile in zip(users, profiles, strict=True)
    ]
    cumulative = list(itertools.accumulate(weights))
    total = ctx.count("aa_chats")
    with ctx.progress(total, "Auto-Analyst chats", "chat") as bar:
        for index in range(total):
            if index and ctx.chance(0.15):
                user, profile = None, new_profile(ctx)
                profile.free_tier = False
            else:
                pick = ctx.rng.choices(range(len(users)), cum_weights=cumulative)[0]
                user, profile = users[pick], profiles[pick]
            write_chat(ctx, source, user, profile, force=index == 0)
            bar.update()
            ctx.writer.maybe_flush()


# planning ------------------------------------------------------------------


def plan_exchange(ctx, dataset, llm, first, force):
    """One question/answer; ``force`` makes it carry code, a run and feedback."""
    rng = ctx.rng
    intent = "ml" if force else ctx.weighted(INTENT_WEIGHTS)
    agents = catalog.AA_INTENTS[intent][1]
    fill = texts.dataset_fill(ctx, dataset)
    question = rng.choice(catalog.AA_QUESTIONS[intent]).format(**fill)
    # Without an @agent mention the planner routes the question.
    planner = ctx.chance(0.85) if len(agents) > 1 else ctx.chance(0.6)
    if not planner:
        question = f"@{agents[0]} {question}"
    names = [f"planner_{agent}" if planner else agent for agent in agents]
    answer, code = compose_answer(ctx, dataset, intent, agents, names, fill, planner)
    run = None
    if code and (force or ctx.chance(0.6)):
        run = plan_run(ctx, llm, dataset, names, code, fill)
    return Exchange(
        question=question,
        answer=answer,
        calls=plan_calls(ctx, llm, len(agents), planner),
        gap=0.0 if first else think_time(ctx),
        run=run,
        feedback=force or ctx.chance(0.3),
    )


def think_time(ctx):
    if ctx.chance(0.05):  # came back later
        return ctx.rng.uniform(3600, 5 * 3600)
    return min(ctx.rng.lognormvariate(4.5, 0.9), 3600)


def compose_answer(ctx, dataset, intent, agents, names, fill, planner):
    """Markdown answer (sections per agent, code, a table, findings) and its code."""
    rng = ctx.rng
    blocks, code_parts = [], []
    if planner:
        blocks.append("**Plan:** " + " → ".join(f"`{name}`" for name in names))
    for agent, name in zip(agents, names, strict=True):
        block = [f"### {name}", rng.choice(catalog.AGENT_SUMMARIES[agent]).format(**fill)]
        if agent != "basic_qa_agent" or ctx.chance(0.3):
            code = catalog.CODE_TEMPLATES[agent].format(**fill)
            code_parts.append(f"# {name}\n{code}")
            block.append(f"```python\n{code}\n```")
        blocks.append("\n\n".join(block))
    if intent in ("preprocess", "stats", "qa", "ml") and ctx.chance(0.7):
        blocks.append(texts.stats_table(ctx, dataset, [fill["num"], fill["num2"]]))
    findings = rng.sample(catalog.AA_INSIGHTS, rng.randint(2, 3))
    blocks.append("**Key findings**\n\n" + texts.bullets(item.format(**fill) for item in findings))
    return "\n\n".join(blocks), "\n\n".join(code_parts)


def plan_calls(ctx, llm, agent_count, planner):
    """The LLM calls behind an answer: the planner's, one per agent, and often
    the memory summary of the conversation."""
    factor = 2.6 if llm.reasoning else 1.0
    shapes = ([(3000, 320, False)] if planner else []) + [(5200, 650, True)] * agent_count
    if ctx.chance(0.5):
        shapes.append((1200, 120, False))
    calls = []
    for prompt_median, completion_median, may_stream in shapes:
        completion = ctx.lognormal(completion_median * factor, 0.45, 20, 16000)
        calls.append(
            Call(
                prompt=ctx.lognormal(prompt_median, 0.35, 200, 60000),
                completion=completion,
                ms=ctx.request_ms(llm, completion),
                streaming=may_stream and ctx.chance(0.45),
            )
        )
    return calls


def plan_run(ctx, llm, dataset, names, code, fill):
    """Whether the code ran (better models fail less) and what it printed."""
    rng = ctx.rng
    with_code = [name for name in names if f"# {name}\n" in code]
    if ctx.chance(min(0.92, 0.42 + 0.09 * llm.quality)):
        fixed = ctx.chance(0.25)
        initial = break_code(code, fill) if fixed else code
        latest = f"{rng.choice(catalog.CODE_FIX_NOTES)}\n{code}" if fixed else code
        output = texts.plain_stats(ctx, dataset, [fill["num"], fill["num2"]])
        return Run(ok=True, initial=initial, latest=latest, output=output)
    failing = rng.sample(with_code, min(len(with_code), rng.choice([1, 1, 1, 2])))
    errors = {name: texts.traceback(ctx, fill) for name in failing}
    latest = code if ctx.chance(0.5) else f"{rng.choice(catalog.CODE_FIX_NOTES)}\n{code}"
    output = "\n\n".join(f"[{name}]\n{error}" for name, error in errors.items())
    return Run(
        ok=False, initial=code, latest=latest, output=output, failed_agents=failing, errors=errors
    )


def break_code(code, fill):
    wrong = f'"{fill["badcol"]}"'
    right = f'"{fill["num"]}"'
    if right in code:
        return code.replace(right, wrong, 1)
    return code + f"\nprint(df[{wrong}].mean())"


def chat_title(ctx, question):
    if ctx.chance(0.2):
        return "New Chat"
    text = question.split(" ", 1)[1] if question.startswith("@") else question
    text = text.rstrip(".?!")
    return text if len(text) <= 80 else text[:77] + "…"


# writing -------------------------------------------------------------------


def write_chat(ctx, source, user, profile, force=False):
    rng = ctx.rng
    dataset = rng.choice(catalog.DATASETS)
    llm = profile.llm
    if ctx.chance(0.15):
        llm = ctx.models[ctx.weighted(catalog.AA_MODEL_WEIGHTS)]
    count = 1 + min(int(rng.expovariate(1 / 6.5)), 18)
    exchanges = [plan_exchange(ctx, dataset, llm, i == 0, force and i == 0) for i in range(count)]
    duration = sum(exchange.gap + exchange.busy for exchange in exchanges) + 60
    signed_up = user.created_at + timedelta(minutes=10) if user else None
    start = ctx.clock.at(signed_up, ctx.anchor - timedelta(seconds=duration))
    chat = ctx.writer.add(
        Chat(
            source=source,
            source_pk=ctx.pk(AA, "chats"),
            user=user,
            organization=user.organization if user else None,
            title=chat_title(ctx, exchanges[0].question),
            created_at=start,
        )
    )
    moment = start
    for exchange in exchanges:
        moment += timedelta(seconds=exchange.gap)
        moment = write_exchange(ctx, source, chat, profile, llm, exchange, moment)
    chat.last_message_at = chat.updated_at = moment
    chat.message_count = 2 * len(exchanges)


def write_exchange(ctx, source, chat, profile, llm, exchange, moment):
    """The question, the ledger rows of its calls, the answer, its code run and
    feedback. Returns the time of the answer."""
    rng = ctx.rng
    ctx.writer.add(
        Message(
            source=source,
            source_pk=ctx.pk(AA, "messages"),
            chat=chat,
            role=USER,
            content=exchange.question,
            created_at=moment,
        )
    )
    elapsed = 0.5
    for call in exchange.calls:
        when = moment + timedelta(seconds=elapsed)
        ctx.add_usage(
            cost=reported_cost(ctx, profile, llm, when, call),
            source=source,
            source_pk=ctx.pk(AA, "model_usage"),
            user=chat.user,
            chat=chat,
            organization=chat.organization,
            model_name=llm.name,
            provider=llm.provider,
            prompt_tokens=call.prompt,
            completion_tokens=call.completion,
            query_size=len(exchange.question),
            response_size=int(call.completion * rng.uniform(3.2, 4.4)),
            timestamp=when,
            is_streaming=call.streaming,
            request_time_ms=None if ctx.chance(0.04) else call.ms,
        )
        elapsed += call.ms / 1000 + 0.4
    answered = moment + timedelta(seconds=elapsed)
    answer = ctx.writer.add(
        Message(
            source=source,
            source_pk=ctx.pk(AA, "messages"),
            chat=chat,
            role=ASSISTANT,
            content=exchange.answer,
            created_at=answered,
        )
    )
    if exchange.run:
        write_run(ctx, source, chat, answer, llm, exchange.run)
    if exchange.feedback:
        write_feedback(ctx, source, answer, profile, llm, exchange.run)
    return answered


def reported_cost(ctx, profile, llm, when, call):
    """What Auto-Analyst reported: the list cost, 0 on the free tier, or
    nothing (then the ledger prices the row itself)."""
    if profile.free_tier:
        return Decimal(0)
    if when < ctx.start + (ctx.anchor - ctx.start) * COSTLESS_SHARE or ctx.chance(0.03):
        return None
    return ctx.listed_cost(llm, when, call.prompt, call.completion)


def write_run(ctx, source, chat, answer, llm, run):
    created = answer.created_at + timedelta(seconds=ctx.rng.uniform(1, 15))
    retried = run.initial != run.latest
    ctx.writer.add(
        CodeExecution(
            source=source,
            source_pk=ctx.pk(AA, "code_executions"),
            message=answer,
            chat=chat,
            user=chat.user,
            initial_code=run.initial,
            latest_code=run.latest,
            is_successful=run.ok,
            output=run.output,
            model_provider=llm.provider,
            model_name=llm.name,
            failed_agents=run.failed_agents,
            error_messages=run.errors,
            created_at=created,
            updated_at=created + timedelta(seconds=ctx.rng.uniform(4, 40) if retried else 0),
        )
    )


def write_feedback(ctx, source, answer, profile, llm, run):
    """A 1–5 rating; better models are rated higher, failed code lower."""
    mean = llm.quality - (0.9 if run and not run.ok else 0)
    rating = min(5, max(1, round(ctx.rng.gauss(mean, 0.8))))
    created = min(
        answer.created_at + timedelta(seconds=ctx.rng.uniform(5, 1200)),
        ctx.anchor - timedelta(seconds=1),
    )
    changed = ctx.chance(0.1)
    ctx.writer.add(
        MessageFeedback(
            source=source,
            source_pk=ctx.pk(AA, "message_feedback"),
            message=answer,
            rating=rating,
            model_name=llm.name,
            model_provider=llm.provider,
            temperature=profile.temperature,
            max_tokens=profile.max_tokens,
            created_at=created,
            updated_at=ctx.clock.at(created) if changed else created,
        )
    )
