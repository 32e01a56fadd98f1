"""Text-to-SQL: users with roles, tokens, API keys, connections, login sessions
with their events and audit entries, chats whose answers carry SQL and a
result, query analytics linked to ledger rows, templates, settings, schemas."""

import base64
import itertools
import string
from dataclasses import dataclass
from datetime import date, timedelta

from chats.models import Chat, Message
from core.models import (
    ApiKey,
    AppUser,
    AuditLog,
    DatabaseConnection,
    DatabaseSchema,
    Event,
    QueryTemplate,
    RefreshToken,
    Source,
    SystemConfig,
    UserSession,
)
from usage.models import QueryAnalytics

from . import catalog

TTS = Source.Kind.TEXT_TO_SQL
USER, ASSISTANT = Message.Role.USER, Message.Role.ASSISTANT
SERIES_KINDS = ("month", "week")


@dataclass
class Account:
    """An app user of text-to-SQL and how they use it (not stored)."""

    user: AppUser
    llm: catalog.LLM
    activity: float
    domain: str


@dataclass
class Question:
    text: str
    entry: dict
    values: dict
    sql: str
    ok: bool
    columns: list
    rows: list
    error: str | None
    prompt: int
    completion: int
    llm_ms: int
    execution: float
    gap: float


# users -----------------------------------------------------------------------


def make_users(ctx):
    source = ctx.sources[TTS]
    accounts = []
    for index in range(ctx.count("tts_users")):
        first, last = ctx.people.name()
        org = ctx.organization() if ctx.chance(0.75) else None
        company = org.name if org else None
        if org:
            domain = ctx.org_domains[org.slug]
        elif ctx.chance(0.8):
            company = ctx.rng.choice(catalog.SQL_VALUES["company"])
            domain = company.lower().replace(" ", "").replace("&", "and") + ".com"
        else:
            domain = ctx.weighted(catalog.PUBLIC_EMAIL_DOMAINS)
        llm = ctx.models[ctx.weighted(catalog.TTS_MODEL_WEIGHTS)]
        created = ctx.signup_time()
        admin = index == 0 or ctx.chance(0.12)
        user = AppUser(
            source=source,
            source_pk=ctx.uuid(),
            organization=org,
            email=ctx.people.email(first, last, domain),
            full_name=f"{first} {last}",
            company=company,
            role=AppUser.Role.ADMIN if admin else AppUser.Role.VIEWER,
            is_active=index == 0 or not ctx.chance(0.05),
            password_hash=ctx.bcrypt_like(),
            preferences={
                "theme": ctx.rng.choice(["light", "dark", "system"]),
                "default_chart": ctx.rng.choice(catalog.TTS_CHART_TYPES),
                "model": llm.name,
                "show_sql": ctx.chance(0.7),
                "language": ctx.rng.choice(["en", "en", "en", "de", "fr", "es"]),
            },
            created_at=created,
            updated_at=ctx.clock.at(created),
        )
        ctx.writer.add(user)
        accounts.append(Account(user, llm, ctx.rng.paretovariate(1.3), domain))
    return accounts


# account activity ----------------------------------------------------------


def make_account_activity(ctx, accounts):
    """Refresh tokens, API keys (with their API queries), connections, login
    sessions with events and audit entries; sets each user's last_login."""
    source = ctx.sources[TTS]
    keys = []
    with ctx.progress(len(accounts), "text-to-SQL accounts", "user") as bar:
        for index, account in enumerate(accounts):
            make_refresh_tokens(ctx, source, account.user)
            if index == 0 or ctx.chance(0.3):
                keys += make_api_keys(ctx, source, account)
            for _ in range(1 if index == 0 else ctx.rng.choice([0, 0, 1, 1, 2])):
                make_connection(ctx, source, account)
            make_sessions(ctx, source, account)
            bar.update()
    make_api_queries(ctx, source, keys)
    for _ in range(len(accounts) * 3):
        event = anonymous_event(ctx, source)
        ctx.writer.add(event)


def make_refresh_tokens(ctx, source, user):
    for _ in range(1 + min(int(ctx.rng.expovariate(1 / 1.5)), 5)):
        created = ctx.clock.at(user.created_at)
        expires = created + timedelta(days=7)
        revoked = ctx.chance(0.15)
        revoked_at = created + timedelta(hours=ctx.rng.uniform(1, 150))
        revoked = revoked and revoked_at < ctx.anchor
        active = not revoked and expires > ctx.anchor
        ctx.writer.add(
            RefreshToken(
                source=source,
                source_pk=ctx.pk(TTS, "refresh_tokens"),
                user=user,
                token_hash=ctx.sha256(),
                expires_at=expires,
                revoked_at=revoked_at if revoked else None,
                is_active=active,
                is_revoked=revoked,
                device_info={**ctx.rng.choice(catalog.DEVICES), "ip": ctx.ip()},
                created_at=created,
            )
        )


def make_api_keys(ctx, source, account):
    keys = []
    for _ in range(ctx.rng.choice([1, 1, 2])):
        created = ctx.clock.at(account.user.created_at, ctx.anchor - timedelta(days=3))
        key = ApiKey(
            source=source,
            source_pk=ctx.pk(TTS, "api_keys"),
            user=account.user,
            key_name=ctx.rng.choice(catalog.TTS_KEY_NAMES),
            key_hash=ctx.sha256(),
            key_prefix=f"t2s_{ctx.hex(8)}",
            permissions=ctx.rng.choice(catalog.TTS_PERMISSIONS),
            is_active=not ctx.chance(0.15),
            created_at=created,
            expires_at=created + timedelta(days=365) if ctx.chance(0.6) else None,
        )
        keys.append((ctx.writer.add(key), account))
        audit(ctx, source, account.user, "api_key.create", "api_key", key.source_pk, created)
    return keys


def fernet_like(ctx, when):
    """Shaped like a Fernet token (version, time, IV, ciphertext, HMAC); random."""
    raw = b"\x80" + int(when.timestamp()).to_bytes(8, "big") + ctx.rng.randbytes(16 + 32 + 32)
    return base64.urlsafe_b64encode(raw).decode()


def make_connection(ctx, source, account):
    user = account.user
    database = ctx.rng.choice(sorted(catalog.SQL_DATABASES))
    db_type = catalog.SQL_DATABASES[database][0]
    company = account.domain.split(".")[0] if user.company else None
    if company is None:
        host = "localhost"
    elif db_type == "snowflake":
        host = f"{company}.eu-central-1.snowflakecomputing.com"
    else:
        host = f"{database.replace('_', '-')}.db.{company}.internal"
    created = ctx.clock.at(user.created_at, ctx.anchor - timedelta(days=1))
    connection = DatabaseConnection(
        source=source,
        source_pk=ctx.pk(TTS, "database_connections"),
        user=user,
        connection_name=ctx.rng.choice(catalog.TTS_CONNECTION_NAMES),
        db_type=db_type,
        db_host=host,
        db_port=catalog.DB_PORTS[db_type],
        db_user=ctx.rng.choice(["readonly", "analyst", "t2s_reader", "bi_service"]),
        encrypted_db_password=fernet_like(ctx, created),
        db_name=database,
        created_at=created,
        updated_at=ctx.clock.at(created) if ctx.chance(0.3) else created,
    )
    ctx.writer.add(connection)
    resource = connection.source_pk
    audit(ctx, source, user, "connection.create", "database_connection", resource, created)


def make_sessions(ctx, source, account):
    user = account.user
    count = 1 + int(ctx.active_share(user) * ctx.lognormal(10, 0.6, 1, 60))
    last_login = None
    for _ in range(count):
        start = ctx.clock.at(user.created_at)
        end = start + timedelta(seconds=min(ctx.rng.lognormvariate(7.3, 0.9), 4 * 3600))
        ended = end < ctx.anchor
        ip, agent = ctx.ip(), ctx.rng.choice(catalog.USER_AGENTS)
        session = ctx.writer.add(
            UserSession(
                source=source,
                source_pk=ctx.pk(TTS, "user_sessions"),
                user=user,
                session_start=start,
                session_end=end if ended else None,
                ip_address=ip,
                user_agent=agent,
                queries_count=ctx.rng.randint(0, 25),
                is_active=not ended,
            )
        )
        last_login = max(last_login or start, start)
        session_audit(ctx, source, session, min(end, ctx.anchor), ended)
        session_events(ctx, source, session, min(end, ctx.anchor))
    user.last_login = last_login


def audit(ctx, source, user, action, resource_type, resource_id, when, **extra):
    ctx.writer.add(
        AuditLog(
            source=source,
            source_pk=ctx.pk(TTS, "audit_logs"),
            user=user,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            ip_address=extra.pop("ip", None) or ctx.ip(),
            user_agent=extra.pop("agent", None) or ctx.rng.choice(catalog.USER_AGENTS),
            timestamp=when,
            **extra,
        )
    )


def session_audit(ctx, source, session, end, ended):
    user, start = session.user, session.session_start
    seen = {"ip": session.ip_address, "agent": session.user_agent}
    if ctx.chance(0.06):
        before = start - timedelta(seconds=ctx.rng.uniform(5, 90))
        failure = catalog.AUDIT_ERRORS["user.login"]
        audit(
            ctx,
            source,
            user,
            "user.login",
            "user",
            user.source_pk,
            before,
            success=False,
            error_message=failure,
            **seen,
        )
    audit(ctx, source, user, "user.login", "user", user.source_pk, start, **seen)
    if ctx.chance(0.3):
        action, resource_type, _, success_rate = ctx.rng.choice(catalog.AUDIT_ACTIONS[2:])
        success = ctx.chance(success_rate)
        when = start + (end - start) * ctx.rng.random()
        extra = {"success": success, **seen}
        if not success:
            extra["error_message"] = catalog.AUDIT_ERRORS.get(action, "Internal server error")
        if action == "user.update_preferences":
            old, new = ctx.rng.sample(["light", "dark", "system"], 2)
            extra |= {"old_values": {"theme": old}, "new_values": {"theme": new}}
        resource_id = str(ctx.rng.randint(1, 5000))
        audit(ctx, source, user, action, resource_type, resource_id, when, **extra)
    if ended and ctx.chance(0.6):
        audit(ctx, source, user, "user.logout", "user", user.source_pk, end, **seen)


def event_data(ctx, event_type):
    rng = ctx.rng
    if event_type == "page_view":
        return {"path": rng.choice(catalog.PAGES), "load_ms": ctx.lognormal(420, 0.5, 50)}
    if event_type == "query_submitted":
        database = rng.choice(sorted(catalog.SQL_DATABASES))
        return {"question_length": rng.randint(18, 160), "database": database}
    if event_type == "chart_rendered":
        return {"chart_type": rng.choice(catalog.TTS_CHART_TYPES)}
    if event_type == "export_csv":
        return {"rows": rng.randint(5, 1000)}
    if event_type == "template_used":
        return {"template": rng.choice(catalog.QUERY_TEMPLATES)["name"]}
    if event_type == "schema_browsed":
        database = rng.choice(sorted(catalog.SQL_DATABASES))
        table = rng.choice(sorted(catalog.SQL_DATABASES[database][1]))
        return {"database": database, "table": table}
    return {"rating": rng.choice(["up", "up", "down"])}


def session_events(ctx, source, session, end):
    count = 2 + min(session.queries_count // 2, 10)
    moments = sorted(
        session.session_start + (end - session.session_start) * ctx.rng.random()
        for _ in range(count)
    )
    for moment in moments:
        event_type = ctx.weighted(catalog.EVENT_TYPES)
        ctx.writer.add(
            Event(
                source=source,
                source_pk=ctx.pk(TTS, "events"),
                event_type=event_type,
                user=session.user,
                event_data=event_data(ctx, event_type),
                timestamp=moment,
                ip_address=session.ip_address,
                user_agent=session.user_agent,
                session_id=session.source_pk,
            )
        )


def anonymous_event(ctx, source):
    return Event(
        source=source,
        source_pk=ctx.pk(TTS, "events"),
        event_type="page_view",
        event_data={"path": ctx.rng.choice(["/login", "/signup", "/pricing"])},
        timestamp=ctx.clock.at(),
        ip_address=ctx.ip(),
        user_agent=ctx.rng.choice(catalog.USER_AGENTS),
        session_id=f"anon_{ctx.hex(16)}",
    )


# questions -------------------------------------------------------------------


def column_values(ctx, kind, count, key=False):
    """``count`` fake values of a result column of this kind (distinct if ``key``)."""
    rng = ctx.rng
    if kind in catalog.SQL_VALUES:
        if key:
            return rng.sample(catalog.SQL_VALUES[kind], count)
        return rng.choices(catalog.SQL_VALUES[kind], k=count)
    if kind == "month":
        first = date(ctx.anchor.year, ctx.anchor.month, 1)
        months = []
        for _ in range(count):
            first = (first - timedelta(days=1)).replace(day=1)
            months.append(first.isoformat())
        return months[::-1]
    if kind == "week":
        monday = (ctx.anchor - timedelta(days=ctx.anchor.weekday() + 7 * count)).date()
        return [(monday + timedelta(weeks=i)).isoformat() for i in range(count)]
    if kind == "date":
        days = sorted(rng.sample(range(1, 60), count), reverse=True)
        return [(ctx.anchor - timedelta(days=d)).date().isoformat() for d in days]
    if kind == "id":
        return sorted(rng.sample(range(10_000, 99_999), count))
    ranges = {
        "money": (20_000, 600_000, 2),
        "money_small": (40, 900, 2),
        "count": (800, 6_000, 0),
        "count_small": (5, 300, 0),
        "percent_small": (0.4, 8.0, 2),
        "days": (1.2, 6.5, 1),
    }
    if kind == "percent":
        weights = [rng.uniform(1, 10) for _ in range(count)]
        return sorted((round(100 * w / sum(weights), 1) for w in weights), reverse=True)
    low, high, decimals = ranges[kind]
    values = [round(rng.uniform(low, high), decimals) for _ in range(count)]
    values = [int(v) for v in values] if decimals == 0 else values
    return values


def result_table(ctx, entry, n):
    """Columns and rows of a result: rankings sorted, series in time order."""
    kinds = [kind for _, kind in entry["columns"]]
    first = kinds[0]
    if first in catalog.SQL_VALUES:
        count = min(n, len(catalog.SQL_VALUES[first]))
    elif first in SERIES_KINDS:
        count = 12 if first == "month" else ctx.rng.randint(8, 13)
    else:
        count = ctx.rng.randint(3, 12)
    columns = [column_values(ctx, kind, count, key=i == 0) for i, kind in enumerate(kinds)]
    measure = columns[-1]
    if first not in SERIES_KINDS and kinds[-1] not in ("date",):
        measure.sort(reverse=kinds[-1] != "days")
    return [name for name, _ in entry["columns"]], [list(row) for row in zip(*columns, strict=True)]


def plan_question(ctx, account, number, previous):
    rng = ctx.rng
    values = {
        "n": rng.choice([5, 10, 10, 20]),
        "year": rng.choice([ctx.anchor.year, ctx.anchor.year - 1]),
        "amount": rng.choice([1000, 5000, 10000]),
    }
    if previous and "{year}" in previous.entry["question"] and ctx.chance(0.3):
        entry = previous.entry
        text = rng.choice(catalog.SQL_FOLLOW_UPS).format(**values)
    else:
        entry = rng.choice(catalog.SQL_QUERIES)
        text = entry["question"].format(**values)
    ok = not ctx.chance(0.08)
    columns, rows = result_table(ctx, entry, values["n"]) if ok else (None, None)
    error = None if ok else rng.choice(catalog.SQL_ERRORS)
    if ok:
        execution = min(rng.lognormvariate(-1.0, 0.9), 25.0)
    else:
        execution = 30.0 if "timeout" in error else rng.uniform(0.01, 0.2)
    completion = ctx.lognormal(170, 0.4, 30, 1500)
    return Question(
        text=text,
        entry=entry,
        values=values,
        sql=entry["sql"].format(**values),
        ok=ok,
        columns=columns,
        rows=rows,
        error=error,
        prompt=ctx.lognormal(1500, 0.3, 400) + 120 * number,
        completion=completion,
        llm_ms=ctx.request_ms(account.llm, completion),
        execution=round(execution, 3),
        gap=0.0 if number == 0 else min(rng.lognormvariate(4.3, 0.9), 3600),
    )


def answer_text(question):
    if not question.ok:
        return (
            "I generated the SQL below, but the database returned an error:\n\n"
            f"```\n{question.error}\n```\n\n"
            "Could you check the table and column names, or rephrase the question?"
        )
    best = question.rows[0]
    if question.columns[0] in SERIES_KINDS:
        best = max(question.rows, key=lambda row: row[-1])
    value = best[-1]
    if isinstance(value, str):
        shown = value
    else:
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
    summary = question.entry["answer"].format(
        first=best[0], value=shown, rows=len(question.rows), **question.values
    )
    return f"{summary}\n\nThe query returned {len(question.rows)} rows."


# chats -----------------------------------------------------------------------


def make_chats(ctx, accounts):
    source = ctx.sources[TTS]
    cumulative = list(itertools.accumulate(a.activity * ctx.active_share(a.user) for a in accounts))
    total = ctx.count("tts_chats")
    with ctx.progress(total, "text-to-SQL chats", "chat") as bar:
        for _ in range(total):
            account = accounts[ctx.rng.choices(range(len(accounts)), cum_weights=cumulative)[0]]
            write_chat(ctx, source, account)
            bar.update()
            ctx.writer.maybe_flush()


def write_chat(ctx, source, account):
    user = account.user
    count = 1 + min(int(ctx.rng.expovariate(1 / 3.4)), 12)
    questions = []
    for number in range(count):
        questions.append(plan_question(ctx, account, number, questions[-1] if questions else None))
    duration = sum(q.gap + q.llm_ms / 1000 + q.execution + 1 for q in questions) + 60
    start = ctx.clock.at(
        user.created_at + timedelta(minutes=5), ctx.anchor - timedelta(seconds=duration)
    )
    title = questions[0].text
    chat = ctx.writer.add(
        Chat(
            source=source,
            source_pk=ctx.uuid(),
            user=user,
            organization=user.organization,
            title=title if len(title) <= 80 else title[:77] + "…",
            is_active=not ctx.chance(0.1),
            created_at=start,
        )
    )
    moment = start
    for number, question in enumerate(questions):
        moment += timedelta(seconds=question.gap)
        moment = write_question(ctx, source, chat, account, question, moment, 2 * number + 1)
    chat.last_message_at = chat.updated_at = moment
    chat.message_count = 2 * len(questions)


def write_question(ctx, source, chat, account, question, moment, sequence):
    """The question, the SQL answer, its analytics and ledger rows; returns the
    time of the answer."""
    query_id = ctx.uuid()
    ctx.writer.add(
        Message(
            source=source,
            source_pk=ctx.pk(TTS, "chat_messages"),
            chat=chat,
            role=USER,
            content=question.text,
            sequence_number=sequence,
            created_at=moment,
        )
    )
    answered = moment + timedelta(seconds=question.llm_ms / 1000 + question.execution + 0.5)
    ctx.writer.add(
        Message(
            source=source,
            source_pk=ctx.pk(TTS, "chat_messages"),
            chat=chat,
            role=ASSISTANT,
            content=answer_text(question),
            query_id=query_id,
            sql_query=question.sql,
            query_result={"columns": question.columns, "rows": question.rows}
            if question.ok
            else None,
            execution_time=question.execution,
            error_message=question.error,
            sequence_number=sequence + 1,
            created_at=answered,
        )
    )
    record_query(ctx, source, account, question, query_id, moment, answered, chat)
    return answered


def record_query(ctx, source, account, question, query_id, asked, answered, chat=None):
    """query_analytics row and the ledger row that carries its LLM cost."""
    llm, user = account.llm, account.user
    analytics_pk = ctx.pk(TTS, "query_analytics")
    llm_at = asked + timedelta(seconds=0.3)
    reported = None
    if ctx.chance(0.85):
        reported = ctx.listed_cost(llm, llm_at, question.prompt, question.completion)
    usage = ctx.add_usage(
        cost=reported,
        source=source,
        source_pk=analytics_pk,
        user=user,
        chat=chat,
        organization=user.organization,
        model_name=llm.name,
        provider=llm.provider,
        prompt_tokens=question.prompt,
        completion_tokens=question.completion,
        query_size=len(question.text),
        response_size=len(question.sql),
        timestamp=llm_at,
        request_time_ms=None,
    )
    ctx.writer.add(
        QueryAnalytics(
            source=source,
            source_pk=analytics_pk,
            usage=usage,
            query_id=query_id,
            user=user,
            question=question.text,
            sql_query=question.sql,
            execution_time=question.execution,
            row_count=len(question.rows) if question.ok else None,
            success=question.ok,
            error_message=question.error,
            chart_type=question.entry["chart"] if question.ok else None,
            timestamp=answered,
            created_at=answered,
        )
    )


def make_api_queries(ctx, source, keys):
    """Questions sent with API keys: analytics and ledger rows without a chat."""
    total = ctx.count("tts_api_queries")
    shares = [ctx.rng.paretovariate(1.2) for _ in keys]
    for (key, account), share in zip(keys, shares, strict=True):
        count = round(total * share / sum(shares))
        times = sorted(ctx.clock.at(key.created_at) for _ in range(count))
        for moment in times:
            question = plan_question(ctx, account, 0, None)
            answered = moment + timedelta(seconds=question.llm_ms / 1000 + question.execution)
            record_query(ctx, source, account, question, ctx.uuid(), moment, answered)
        key.usage_count = count
        key.last_used = times[-1] if times else None


# reference tables ----------------------------------------------------------


def make_query_templates(ctx, accounts):
    source = ctx.sources[TTS]
    for index, spec in enumerate(catalog.QUERY_TEMPLATES):
        system = index < 5
        created = ctx.clock.before_start(5, 200) if system else ctx.clock.at()
        ctx.writer.add(
            QueryTemplate(
                source=source,
                source_pk=ctx.pk(TTS, "query_templates"),
                user=None if system else ctx.rng.choice(accounts).user,
                name=spec["name"],
                description=f"Reusable {spec['category']} question with parameters.",
                question_template=spec["question"],
                sql_template=spec["sql"],
                category=spec["category"],
                is_public=system or ctx.chance(0.5),
                is_verified=system or ctx.chance(0.3),
                usage_count=ctx.lognormal(40 if system else 6, 0.8, 0),
                created_at=created,
                updated_at=ctx.clock.at(created) if ctx.chance(0.4) else created,
            )
        )


def secret(ctx, prefix, length):
    if prefix.startswith("https://"):
        org, project = ctx.rng.randint(10_000, 99_999), ctx.rng.randint(1_000_000, 9_999_999)
        return f"https://{ctx.hex(length)}@o{org}.ingest.sentry.io/{project}"
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(ctx.rng.choices(alphabet, k=length))


def make_system_config(ctx, accounts):
    source = ctx.sources[TTS]
    admins = [a.user for a in accounts if a.user.role == AppUser.Role.ADMIN]
    for key, value, description in catalog.SYSTEM_CONFIG:
        sensitive = isinstance(value, tuple)
        created = ctx.clock.before_start(30, 300)
        changed = ctx.chance(0.4)
        ctx.writer.add(
            SystemConfig(
                source=source,
                source_pk=ctx.pk(TTS, "system_config"),
                config_key=key,
                config_value=secret(ctx, value[1], value[2]) if sensitive else value,
                description=description,
                is_sensitive=sensitive,
                created_at=created,
                updated_at=ctx.clock.at() if changed else created,
                updated_by=ctx.rng.choice(admins).email if changed else "system",
            )
        )


def make_schemas(ctx):
    source = ctx.sources[TTS]
    for database, (_, tables) in catalog.SQL_DATABASES.items():
        for table, columns in tables.items():
            rows = ctx.lognormal(200_000, 1.5, 50)
            ctx.writer.add(
                DatabaseSchema(
                    source=source,
                    source_pk=ctx.pk(TTS, "database_schemas"),
                    database_name=database,
                    table_name=table,
                    schema_info=schema_info(columns),
                    last_updated=ctx.clock.at(ctx.anchor - timedelta(days=10)),
                    row_count=rows,
                    table_size=rows * ctx.rng.randint(60, 220),
                )
            )


def schema_info(columns):
    keys = [columns[0][0]]
    references = []
    for name, _, _ in columns[1:]:
        if name.endswith("_id"):
            references.append({"column": name, "references": f"{name[:-3]}s.id"})
        elif name.endswith("_key"):
            references.append({"column": name, "references": f"dim_{name[:-4]}.{name}"})
    return {
        "columns": [
            {"name": name, "type": kind, "nullable": nullable, "primary_key": name in keys}
            for name, kind, nullable in columns
        ],
        "primary_key": keys,
        "foreign_keys": references,
    }


def finish_users(ctx, accounts):
    """token_usage from the ledger rows; last_login from the sessions."""
    users = [account.user for account in accounts]
    for user in users:
        user.token_usage = ctx.tokens_by_user[user.pk]
    AppUser.objects.bulk_update(users, ["token_usage", "last_login"], batch_size=500)
