"""Shared machinery of the demo generators: ids, the clock, people, prices,
and the writer that bulk-creates rows in dependency order."""

import bisect
import hashlib
import itertools
import math
import random
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

from chats.models import Chat, CodeExecution, Message, MessageFeedback, UploadedFile
from core.models import (
    AgentTemplate,
    ApiKey,
    AppUser,
    AuditLog,
    DatabaseConnection,
    DatabaseSchema,
    Event,
    Organization,
    QueryTemplate,
    RefreshToken,
    SystemConfig,
    UserSession,
    UserTemplatePreference,
)
from reports.models import AnalysisResult, DeepAnalysisReport
from usage import ledger
from usage.models import Budget, ModelPrice, ModelUsage, PerformanceMetric, QueryAnalytics

from . import catalog

# Parents before children: a flush writes the pending rows in this order.
WRITE_ORDER = [
    ModelPrice,
    Organization,
    AppUser,
    AgentTemplate,
    UserTemplatePreference,
    SystemConfig,
    DatabaseSchema,
    DatabaseConnection,
    QueryTemplate,
    ApiKey,
    RefreshToken,
    UserSession,
    AuditLog,
    Event,
    Chat,
    UploadedFile,
    Message,
    MessageFeedback,
    CodeExecution,
    ModelUsage,
    QueryAnalytics,
    PerformanceMetric,
    DeepAnalysisReport,
    AnalysisResult,
    Budget,
]

EIGHT_PLACES = Decimal("0.00000001")
BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class Writer:
    """Collects unsaved rows and bulk-creates them, parents first."""

    def __init__(self, batch_size=1000, flush_at=20000):
        self.batch_size = batch_size
        self.flush_at = flush_at
        self.pending = defaultdict(list)
        self.pending_count = 0
        self.created = Counter()

    def add(self, obj):
        self.pending[type(obj)].append(obj)
        self.pending_count += 1
        return obj

    def flush(self):
        for model in WRITE_ORDER:
            rows = self.pending.pop(model, None)
            if rows and model is ModelUsage:  # roll-ups: ledger.rebuild at the end
                ledger.bulk_load(rows, batch_size=self.batch_size)
            elif rows:
                model.objects.bulk_create(rows, batch_size=self.batch_size)
                self.created[model] += len(rows)
        if self.pending:
            raise RuntimeError(f"no write order for {sorted(m.__name__ for m in self.pending)}")
        self.pending_count = 0

    def maybe_flush(self):
        """Flush when enough rows wait; call it only between whole units (a chat)."""
        if self.pending_count >= self.flush_at:
            self.flush()


class Clock:
    """Random moments in [start, end): recent days busier, weekends quieter,
    working hours (UTC) busier than nights."""

    def __init__(self, rng, start, end):
        self.rng = rng
        self.start = start
        self.end = end
        self.days = max(1, (end - start).days)
        weights = []
        for index in range(self.days):
            day = start + timedelta(days=index)
            weight = 1 + (catalog.GROWTH - 1) * index / max(1, self.days - 1)
            if day.weekday() >= 5:
                weight *= catalog.WEEKEND_FACTOR
            weights.append(weight * rng.uniform(0.85, 1.15))
        self.cumulative = list(itertools.accumulate(weights))
        self.hour_cumulative = list(itertools.accumulate(catalog.HOUR_WEIGHTS))

    def _day_index(self, moment):
        index = (moment - self.start).days
        return min(max(index, 0), self.days - 1)

    def at(self, lo=None, hi=None):
        """A random moment in [lo, hi), following the activity pattern."""
        lo = self.start if lo is None else max(lo, self.start)
        hi = self.end if hi is None else min(hi, self.end)
        if hi <= lo:
            return lo
        first = self._day_index(lo)
        last = self._day_index(hi - timedelta(microseconds=1))
        low_mass = self.cumulative[first - 1] if first else 0.0
        for _ in range(8):
            mass = self.rng.uniform(low_mass, self.cumulative[last])
            day = min(bisect.bisect_left(self.cumulative, mass), last)
            hour = bisect.bisect_left(
                self.hour_cumulative, self.rng.uniform(0, self.hour_cumulative[-1])
            )
            moment = self.start + timedelta(
                days=day,
                hours=min(hour, 23),
                seconds=self.rng.randrange(3600),
                milliseconds=self.rng.randrange(1000),
            )
            if lo <= moment < hi:
                return moment
        return lo + (hi - lo) * self.rng.random()

    def before_start(self, min_days, max_days):
        """A moment this many days before the window (accounts older than the data)."""
        return self.start - timedelta(
            days=self.rng.uniform(min_days, max_days), seconds=self.rng.randrange(86400)
        )


class People:
    """Names, unique usernames and e-mails (unique case-insensitively)."""

    def __init__(self, rng):
        self.rng = rng
        self.usernames = set()
        self.emails = set()

    def name(self):
        return self.rng.choice(catalog.FIRST_NAMES), self.rng.choice(catalog.LAST_NAMES)

    def _unique(self, base, taken, fmt):
        candidate, number = base, 1
        while fmt(candidate).lower() in taken:
            number += 1
            candidate = f"{base}{number}"
        value = fmt(candidate)
        taken.add(value.lower())
        return value

    def username(self, first, last):
        first, last = first.lower(), last.lower()
        style = self.rng.randrange(5)
        base = [
            f"{first}{last}",
            f"{first[0]}{last}",
            f"{first}.{last}",
            f"{first}_{last[0]}",
            f"{last}{first[:2]}",
        ][style]
        if self.rng.random() < 0.3:
            base += str(self.rng.randrange(10, 99))
        return self._unique(base, self.usernames, lambda value: value)

    def claim_username(self, base):
        """``base`` itself, or with a number appended if it is taken."""
        return self._unique(base, self.usernames, lambda value: value)

    def email(self, first, last, domain):
        first, last = first.lower(), last.lower()
        base = self.rng.choice(
            [f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[0]}", f"{first}_{last}"]
        )
        email = self._unique(base, self.emails, lambda value: f"{value}@{domain}")
        if self.rng.random() < 0.05:  # some people type their address capitalised
            local, _, host = email.partition("@")
            email = f"{local.capitalize()}@{host}"
        return email


class Context:
    """Everything the generators share: the seeded RNG, the clock, the writer."""

    def __init__(self, *, seed, scale, days, anchor, progress):
        self.rng = random.Random(seed)
        self.scale = scale
        self.anchor = anchor
        self.start = anchor - timedelta(days=days)
        self.clock = Clock(self.rng, self.start, anchor)
        self.people = People(self.rng)
        self.writer = Writer()
        # (total, description, unit) -> a tqdm bar (a context manager)
        self.progress = progress
        self.sources = {}
        self.organizations = []
        self.org_weights = []
        self.org_domains = {}
        self.models = {model.name: model for model in catalog.MODELS}
        self.prices = None  # a usage.pricing.PriceBook, set with the prices
        self.tokens_by_user = Counter()
        self._pks = defaultdict(lambda: itertools.count(1))
        self._weighted = {}

    # sizes and ids ---------------------------------------------------------

    def count(self, key):
        return max(1, round(catalog.BASE_COUNTS[key] * self.scale))

    def pk(self, kind, table):
        """The next integer primary key of a source table, as text."""
        return str(next(self._pks[(kind, table)]))

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, length):
        return f"{self.rng.getrandbits(4 * length):0{length}x}"

    def sha256(self):
        return hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def bcrypt_like(self):
        """Looks like a bcrypt hash; random, so it matches no password."""
        tail = "".join(self.rng.choices(BCRYPT_ALPHABET, k=53))
        return f"$2b$12${tail}"

    # random helpers ----------------------------------------------------------

    def weighted(self, mapping):
        """A key of ``mapping`` drawn with its value as weight."""
        key = id(mapping)
        if key not in self._weighted:
            items = list(mapping.items()) if isinstance(mapping, dict) else list(mapping)
            keys = [item[0] for item in items]
            self._weighted[key] = (keys, list(itertools.accumulate(item[1] for item in items)))
        keys, cumulative = self._weighted[key]
        return self.rng.choices(keys, cum_weights=cumulative)[0]

    def lognormal(self, median, sigma, low=1, high=None):
        value = int(self.rng.lognormvariate(math.log(median), sigma))
        value = max(low, value)
        return min(value, high) if high else value

    def chance(self, probability):
        return self.rng.random() < probability

    def ip(self):
        first = self.rng.choice([24, 37, 62, 73, 81, 91, 104, 142, 176, 185, 203, 212])
        rest = (self.rng.randrange(256) for _ in range(3))
        return ".".join(str(part) for part in (first, *rest))

    def signup_time(self):
        """When an app user signed up: many before the window, the rest inside it."""
        if self.chance(0.55):
            return self.clock.before_start(1, 400)
        return self.clock.at(hi=self.anchor - timedelta(days=2))

    def active_share(self, user):
        """The share of the window the user has had an account (at least 2%)."""
        since = max(user.created_at, self.start)
        return max(0.02, (self.anchor - since) / (self.anchor - self.start))

    def organization(self):
        return self.rng.choices(self.organizations, cum_weights=self.org_weights)[0]

    # LLM calls --------------------------------------------------------------

    def request_ms(self, llm, completion_tokens):
        seconds = llm.ttft_ms / 1000 + completion_tokens / llm.tokens_per_s
        return int(seconds * 1000 * self.rng.lognormvariate(0, 0.25))

    def listed_cost(self, llm, when, prompt_tokens, completion_tokens):
        """What the call cost at the list price in force, or None if unpriced."""
        price = self.prices.price_on(llm.name, llm.provider, when)
        if price is None:
            return None
        return price.cost_of(prompt_tokens, completion_tokens).quantize(EIGHT_PLACES)

    def add_usage(self, *, cost=None, **fields):
        """Queue a ledger row; without a reported cost it is priced from ModelPrice."""
        row = ModelUsage(cost=cost, cost_source=ModelUsage.CostSource.REPORTED, **fields)
        row.total_tokens = row.prompt_tokens + row.completion_tokens
        if cost is None:
            self.prices.price_row(row)
            if row.cost is not None:
                row.cost = row.cost.quantize(EIGHT_PLACES)
        if row.user_id:
            self.tokens_by_user[row.user_id] += row.total_tokens
        return self.writer.add(row)
