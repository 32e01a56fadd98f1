"""Shared fixtures of the dashboard tests: a fixed "today", staff accounts and
an awkward ledger written through ``usage.ledger.add_usage``.

The ledger is cut into roll-up days in the zone in force when it is written,
so ``awkward`` depends on ``time_zone`` (UTC here; test modules override it).
"""

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.utils import timezone

from core.roles import MANAGERS
from core.tests import factories as f
from usage import ledger
from usage.models import ModelUsage

from .partitioning import partitioned_ledger  # noqa: F401 (a fixture for the tests here)

# "Today" of every page and budget in these tests: a Thursday, four days after
# New York moved to summer time (10 March 2024), so 7-day periods span it.
TODAY = dt.date(2024, 3, 14)
PASSWORD = "dash-board-pass-4711"

G = ("gpt-4o", "openai")
Z = ("gpt-4o", "azure")  # same model name, another provider, no price
C = ("claude-3-5-sonnet", "anthropic")
L = ("llama-3-70b", "groq")  # never priced, never reported: unpriced
M = ("mistral-large", "mistral")  # reported costs only, some zero


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "million_rows: converts a 1M-row ledger (PostgreSQL, about a minute); runs in CI, "
        '-m "not million_rows" leaves it out locally',
    )


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture
def time_zone(request, settings):
    """The zone days are cut in; set before the ledger is written. UTC unless
    parametrized indirectly."""
    settings.TIME_ZONE = getattr(request, "param", "UTC")
    return settings.TIME_ZONE


@pytest.fixture
def fixed_today(monkeypatch):
    """Make timezone.localdate() (presets, budgets) answer TODAY."""
    real = timezone.localdate

    def localdate(value=None, timezone=None):
        return TODAY if value is None else real(value, timezone)

    monkeypatch.setattr("django.utils.timezone.localdate", localdate)
    return TODAY


def _staff(username, *groups, password=None):
    return f.UserFactory(
        username=username,
        groups=list(groups),
        password=make_password(password) if password else make_password(None),
    )


@pytest.fixture
def manager(db):
    return _staff("manager", "Managers", password=PASSWORD)


@pytest.fixture
def staff(db):
    return _staff("staffer", "Staff", password=PASSWORD)


@pytest.fixture
def manager_without_export(db):
    """A manager-like account: every Managers right but usage.export_usage."""
    user = _staff("manager-no-export")
    for dotted in MANAGERS:
        if dotted == "usage.export_usage":
            continue
        app_label, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def _usage(
    n, when, who, model, prompt, completion, cost, streaming, ms, source, chat=None, **parts
):
    return ModelUsage(
        **parts,
        user=who,
        chat=chat,
        model_name=model[0],
        provider=model[1],
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=None if cost is None else Decimal(cost),
        timestamp=when,
        is_streaming=streaming,
        request_time_ms=ms,
        source=source,
        source_pk=f"r{n}" if source else "",
    )


# Request times (ms) of bob's twelve gpt-4o calls on 9 March (UTC 00:00–11:00).
BOB_TIMES = [100, 150, 220, 260, 310, 480, 520, 760, 980, 1490, 2990, 7400]


@pytest.fixture
def awkward(time_zone):
    """Orgs, users, sources, prices, an awkward ledger, chats, feedback and
    code executions, all in February and March 2024.

    Ledger rows (UTC): cached input and reasoning tokens reported on some
    rows (values, zeros, a part equal to its whole), NULL on the others;
    costs None are priced from ModelPrice (gpt-4o $2.50/$10,
    claude $3/$15 per million) or stay unpriced (llama); zero costs; anonymous
    rows with and without an organisation (from the chat); 23:59:59 and
    00:00:00 on adjacent days; 03:00 UTC (the previous day in New York);
    10**9 tokens in one call (the most core.bounds allows); NULL request
    times; a row after "today" in UTC but on it in New York. Written in four
    add_usage batches, so the roll-ups' keys are upserted several times.
    """
    acme = f.OrganizationFactory(name="Acme", slug="acme")
    globex = f.OrganizationFactory(name="Globex", slug="globex")
    ann = f.AppUserFactory(organization=acme, email="ann@acme.test", username="ann")
    bob = f.AppUserFactory(organization=acme, email="bob@acme.test", username="bob")
    cat = f.AppUserFactory(organization=globex, email="cat@globex.test", username="cat")
    dan = f.AppUserFactory(organization=None, email="dan@solo.test", username="dan")
    aa = f.SourceFactory(name="auto-analyst", kind="auto_analyst")
    tts = f.SourceFactory(name="text-to-sql", kind="text_to_sql")
    for (model, provider), rates in {G: ("2.50", "10.00"), C: ("3.00", "15.00")}.items():
        f.ModelPriceFactory(
            model_name=model,
            provider=provider,
            input_per_million=Decimal(rates[0]),
            output_per_million=Decimal(rates[1]),
            effective_from=dt.date(2024, 1, 1),
        )
    chat_ann = f.ChatFactory(
        user=ann,
        organization=acme,
        title="Ann's sales",
        source=aa,
        source_pk="c1",
        created_at=utc(2024, 3, 13, 9),
    )
    chat_cat = f.ChatFactory(
        user=cat,
        organization=globex,
        title="Cat's churn",
        source=tts,
        source_pk="c2",
        created_at=utc(2024, 3, 11, 14),
    )
    chat_anon = f.ChatFactory(
        user=None,
        organization=globex,
        title="Anonymous",
        source=tts,
        source_pk="c3",
        created_at=utc(2024, 3, 14, 2),
    )

    first = [
        _usage(
            1,
            utc(2024, 3, 13, 23, 59, 59),
            *(ann, G, 1200, 300, None, True, 850, aa),
            cached_input_tokens=1000,
            reasoning_tokens=0,
        ),
        _usage(2, utc(2024, 3, 14, 0, 0, 0), ann, G, 2000, 500, "0.0125", False, 1200, aa),
        _usage(
            3,
            utc(2024, 3, 14, 3),
            *(None, C, 1000, 1000, None, True, 2500, tts, chat_anon),
            cached_input_tokens=0,
        ),
        _usage(4, utc(2024, 3, 14, 12), None, L, 500, 250, None, False, None, None),
        _usage(5, utc(2024, 3, 12, 10), bob, M, 400, 100, "0", False, 300, aa),
        _usage(
            6,
            utc(2024, 3, 11, 15),
            *(cat, C, 6 * 10**8, 4 * 10**8, None, True, 125_000, tts),
            # every token a part, at the bound
            cached_input_tokens=6 * 10**8,
            reasoning_tokens=4 * 10**8,
        ),
        _usage(7, utc(2024, 3, 10, 6, 30), dan, Z, 800, 200, "0.004", False, 640, aa),
        _usage(8, utc(2024, 3, 10, 4, 59, 59), dan, Z, 100, 50, "0.0009", True, 90, aa),
        _usage(
            9,
            utc(2024, 3, 13, 18),
            *(bob, L, 3000, 700, None, False, 4000, tts),
            reasoning_tokens=700,
        ),
        _usage(10, utc(2024, 3, 1, 0, 0, 0), ann, G, 100, 100, None, False, 50, aa),
        _usage(11, utc(2024, 3, 5, 12), cat, G, 5000, 1500, None, False, 700, tts),
        _usage(12, utc(2024, 2, 20, 9), ann, G, 1000, 500, None, False, 1000, aa),
        _usage(13, utc(2024, 2, 2, 12), cat, C, 2000, 400, "0.02", False, 1800, tts),
        _usage(14, utc(2024, 3, 7, 23, 59, 59), bob, M, 300, 300, "0.001", False, 450, aa),
        _usage(15, utc(2024, 3, 8, 0, 0, 0), bob, M, 600, 600, "0.002", True, 460, aa),
        _usage(16, utc(2024, 3, 15, 2), ann, G, 700, 300, None, False, 900, aa),
        _usage(17, utc(2024, 3, 14, 20), None, G, 0, 0, "0", False, 0, tts, chat_anon),
    ]
    bobs = [
        _usage(
            20 + i,
            utc(2024, 3, 9, i),
            bob,
            G,
            100 * (i + 1),
            20 * (i + 1),
            None,
            i % 3 == 0,
            ms,
            aa if i % 2 == 0 else tts,
            cached_input_tokens=50 if i % 4 == 0 else None,
        )
        for i, ms in enumerate(BOB_TIMES)
    ]
    for batch in (first, bobs[:6], bobs[6:]):
        ledger.add_usage(batch)
    # A second gpt-4o call of ann at the same second: same roll-up key as r2.
    ledger.add_usage([_usage(40, utc(2024, 3, 14, 0, 0, 0), ann, G, 10, 10, None, False, None, aa)])

    def message(n, chat, model, when, mistake=False, role="assistant"):
        return f.MessageFactory(
            chat=chat,
            role=role,
            model_name=model,
            created_at=when,
            is_mistake=mistake,
            source=chat.source,
            source_pk=f"m{n}",
        )

    m1 = message(1, chat_ann, "gpt-4o", utc(2024, 3, 13, 10))
    m2 = message(2, chat_ann, "gpt-4o", utc(2024, 3, 13, 23, 59, 59), mistake=True)
    m3 = message(3, chat_ann, "gpt-4o", utc(2024, 3, 14, 0, 0, 0))
    message(4, chat_ann, "claude-3-5-sonnet", utc(2024, 3, 12, 9))
    m5 = message(5, chat_cat, "claude-3-5-sonnet", utc(2024, 3, 11, 16), mistake=True)
    m6 = message(6, chat_cat, "claude-3-5-sonnet", utc(2024, 3, 11, 17))
    message(7, chat_cat, "llama-3-70b", utc(2024, 3, 13, 18))
    m8 = message(8, chat_ann, "gpt-4o", utc(2024, 2, 1, 10), mistake=True)
    m9 = message(9, chat_anon, "gpt-4o", utc(2024, 3, 14, 3), mistake=True)
    message(10, chat_ann, None, utc(2024, 3, 13, 9), role="user")
    m11 = message(11, chat_ann, None, utc(2024, 3, 13, 9, 30))

    def feedback(n, msg, rating, model, when):
        return f.MessageFeedbackFactory(
            message=msg,
            rating=rating,
            model_name=model,
            model_provider=None,
            created_at=when,
            source=msg.source,
            source_pk=f"f{n}",
        )

    feedback(1, m1, 5, "gpt-4o", utc(2024, 3, 13, 11))
    feedback(2, m2, 2, "gpt-4o", utc(2024, 3, 14, 0, 30))
    feedback(3, m5, 4, "claude-3-5-sonnet", utc(2024, 3, 11, 18))
    feedback(4, m6, None, "claude-3-5-sonnet", utc(2024, 3, 11, 18))
    feedback(5, m9, 1, "gpt-4o", utc(2024, 3, 14, 3, 30))
    feedback(6, m8, 3, "gpt-4o", utc(2024, 2, 1, 11))

    def execution(n, msg, model, ok, when):
        return f.CodeExecutionFactory(
            message=msg,
            model_name=model,
            is_successful=ok,
            created_at=when,
            source=msg.source,
            source_pk=f"e{n}",
        )

    execution(1, m1, "gpt-4o", True, utc(2024, 3, 13, 10, 5))
    execution(2, m3, "gpt-4o", True, utc(2024, 3, 14, 0, 5))
    execution(3, m2, "gpt-4o", False, utc(2024, 3, 13, 23, 59, 59))
    execution(4, m5, "claude-3-5-sonnet", False, utc(2024, 3, 11, 16, 5))
    execution(5, m6, "claude-3-5-sonnet", True, utc(2024, 3, 11, 17, 5))
    execution(6, m11, None, False, utc(2024, 3, 13, 9, 35))

    budgets = SimpleNamespace(
        acme=f.BudgetFactory(
            organization=acme, monthly_limit=Decimal("1.00"), alert_threshold=Decimal("0.050")
        ),
        globex=f.BudgetFactory(organization=globex, monthly_limit=Decimal("5000.00")),
        ann=f.BudgetFactory(organization=None, user=ann, monthly_limit=Decimal("0.02")),
        dan=f.BudgetFactory(organization=None, user=dan, monthly_limit=Decimal("100.00")),
    )
    return SimpleNamespace(
        acme=acme,
        globex=globex,
        ann=ann,
        bob=bob,
        cat=cat,
        dan=dan,
        aa=aa,
        tts=tts,
        chat_ann=chat_ann,
        chat_cat=chat_cat,
        chat_anon=chat_anon,
        budgets=budgets,
    )
