"""The ledger partitioned by month (PostgreSQL, usage.partitions).

The conversion while writers insert, update (across months) and delete
loses nothing: the roll-ups, moved by every writer's deltas, equal plain SQL
over the partitioned ledger after the swap, and no key is there twice. Every
write path works on the partitioned ledger; rows land in their month's
partition or in DEFAULT; partitions are created ahead idempotently, moving
rows out of DEFAULT; detaching a month is audited and takes it out of the
roll-ups; the pages show the same figures before and after the conversion.
The 1M-row conversion is in test_partitions_million.py.
"""

import contextlib
import datetime as dt
import random
import re
import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django.urls import reverse

from core.models import AuditLog, Source
from core.tests import factories as f
from usage import drill, ledger, partitions
from usage.metrics import Scope
from usage.models import ModelUsage
from usage.rollups import ROLLUPS, SUMMED

from .conftest import utc
from .partitioning import convert, restore_plain
from .test_ledger_concurrency import _plain_sql

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="declarative partitioning is PostgreSQL's; SQLite keeps the plain ledger",
)


def _row(source_pk="", **fields):
    values = {
        "model_name": "gpt-4o",
        "provider": "openai",
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": None,
        "cost": Decimal("0.01"),
        "timestamp": utc(2024, 3, 1, 12),
        "request_time_ms": 900,
    }
    return ModelUsage(source_pk=source_pk, **{**values, **fields})


def where(pk):
    """The partition holding ledger row ``pk``."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {partitions.LEDGER} WHERE id = %s",  # noqa: S608
            [pk],
        )
        row = cursor.fetchone()
    return row and row[0]


def assert_rollups_equal_ledger():
    """Every roll-up key equals plain SQL over the ledger; no key twice."""
    for rollup in ROLLUPS:
        got = {
            tuple(row[: len(rollup.grain)]): tuple(row[len(rollup.grain) :])
            for row in rollup.rows().values_list(*rollup.grain, *SUMMED)
        }
        assert len(got) == rollup.rows().count(), rollup
        assert got == _plain_sql(rollup), rollup
        if rollup.latency:
            timed = ModelUsage.objects.filter(request_time_ms__isnull=False).count()
            assert sum(rollup.latency.objects.values_list("requests", flat=True)) == timed


def assert_no_key_twice():
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT source_id, source_pk, COUNT(*) FROM {partitions.LEDGER} "  # noqa: S608
            "WHERE source_id IS NOT NULL GROUP BY 1, 2 HAVING COUNT(*) > 1"
        )
        assert cursor.fetchall() == []


# -- converting while the site writes --------------------------------------------------

KEYS = [f"k{n}" for n in range(300)]
# Both sides of a month boundary: updates move rows between partitions.
EDGE = utc(2024, 2, 29, 22)


def _random_row(rng, source_pk):
    prompt = rng.randrange(10_000)
    return _row(
        source_pk,
        model_name=rng.choice(["gpt-4o", "claude"]),
        prompt_tokens=prompt,
        cached_input_tokens=rng.choice([None, 0, prompt // 3]),  # a part, never above it
        cost=rng.choice([None, Decimal(rng.randrange(10**6)) / 10**6]),
        timestamp=EDGE + dt.timedelta(minutes=rng.randrange(4 * 60)),
        request_time_ms=rng.choice([None, rng.randrange(100_000)]),
    )


def _writer(seed, source_pk, stop, errors, done):
    rng = random.Random(seed)
    source = Source.objects.get(pk=source_pk)
    try:
        while not stop.is_set():
            action, keys = rng.random(), rng.sample(KEYS, rng.randrange(1, 6))
            if action < 0.5:
                ledger.upsert_usage(source, [_random_row(rng, key) for key in keys])
            elif action < 0.65:
                wanted = {
                    key: {
                        "model_name": "gpt-4o",
                        "provider": "openai",
                        "prompt_tokens": rng.randrange(100),
                        "completion_tokens": 1,
                        "total_tokens": None,
                        "cost": None,
                        "timestamp": EDGE + dt.timedelta(minutes=rng.randrange(4 * 60)),
                        "request_time_ms": None,
                    }
                    for key in keys
                }
                with transaction.atomic():
                    ledger.copy_upsert(source, wanted, ledger.PriceBook(), rng.random() < 0.5)
            elif action < 0.8:
                ledger.delete_usage(ModelUsage.objects.filter(source=source, source_pk__in=keys))
            else:
                row = ModelUsage.objects.filter(source=source, source_pk=keys[0]).first()
                if row is not None:
                    row.timestamp = EDGE + dt.timedelta(minutes=rng.randrange(4 * 60))
                    row.prompt_tokens = rng.randrange(10_000)
                    row.cached_input_tokens = None  # a part must not exceed its whole
                    with contextlib.suppress(ModelUsage.DoesNotExist):  # deleted meanwhile
                        ledger.save_usage(row)
            done[seed] = done.get(seed, 0) + 1
    except Exception as error:  # noqa: BLE001 (reported by the test)
        errors.append(repr(error))
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_conversion_under_concurrent_writers_loses_nothing(settings):
    settings.TIME_ZONE = "UTC"
    source = Source.objects.create(name="live", kind="auto_analyst")
    rng = random.Random(21)
    ledger.upsert_usage(source, [_random_row(rng, key) for key in KEYS])
    stop, errors, done = threading.Event(), [], {}
    threads = [
        threading.Thread(target=_writer, args=(seed, source.pk, stop, errors, done))
        for seed in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        partitions.prepare(log=lambda message: None)
        with transaction.atomic(), connection.cursor() as cursor:
            for month in ((2024, 2), (2024, 3)):
                partitions._create_month(cursor, partitions.NEW, *month)
        during_copy = sum(done.values())
        partitions.copy(batch_size=20, pause=0.02, log=lambda message: None)
        during_copy = sum(done.values()) - during_copy
        partitions.swap(log=lambda message: None)
        after = sum(done.values())
        while sum(done.values()) < after + 40 and not errors:  # writers on the new table
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    try:
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert during_copy > 0  # the copy ran while the writers wrote
        assert partitions.state() == "partitioned"
        assert_no_key_twice()
        assert_rollups_equal_ledger()
        # Rows on both sides of the month boundary, none in DEFAULT.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT tableoid::regclass::text, COUNT(*) FROM {partitions.LEDGER} GROUP BY 1"  # noqa: S608
            )
            counts = dict(cursor.fetchall())
        months = {partitions.partition_name(2024, 2), partitions.partition_name(2024, 3)}
        assert set(counts) == months
        # New ids come after every old one.
        (row,) = ledger.add_usage([_row(timestamp=utc(2024, 3, 2))])
        assert row.pk > ModelUsage.objects.exclude(pk=row.pk).order_by("-pk")[0].pk
    finally:
        restore_plain()


# -- the write paths on a partitioned ledger --------------------------------------------


@pytest.mark.django_db
def test_every_write_path_on_a_partitioned_ledger(partitioned_ledger, settings):
    settings.TIME_ZONE = "UTC"
    assert ledger.partitioned()
    source = f.SourceFactory()
    user = f.AppUserFactory(organization=f.OrganizationFactory())
    created = ledger.upsert_usage(source, [_row("a", user=user), _row("b")])["created"]
    a, b = created
    assert where(a.pk) == partitions.partition_name(2024, 3)
    # Re-sent unchanged, then moved to February: one row, in the new month.
    assert len(ledger.upsert_usage(source, [_row("a", user=user)])["unchanged"]) == 1
    result = ledger.upsert_usage(source, [_row("a", user=user, timestamp=utc(2024, 2, 29, 23))])
    assert [u.pk for u in result["updated"]] == [a.pk]
    assert where(a.pk) == partitions.partition_name(2024, 2)
    assert ModelUsage.objects.filter(source=source, source_pk="a").count() == 1
    assert_rollups_equal_ledger()
    # The COPY path: new rows, then the same keys changed (one to April).
    values = {
        "model_name": "claude",
        "provider": "anthropic",
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": None,
        "cost": Decimal("0.5"),
        "timestamp": utc(2024, 3, 31, 23, 59, 59),
        "request_time_ms": None,
    }
    book = ledger.PriceBook()
    first = ledger.copy_upsert(source, {"c": values, "d": values}, book)
    assert len(first["created"]) == 2
    moved = {**values, "timestamp": utc(2024, 4, 1)}
    second = ledger.copy_upsert(source, {"c": moved, "d": values, "a": values}, book)
    assert (len(second["created"]), len(second["updated"]), len(second["unchanged"])) == (0, 2, 1)
    c = ModelUsage.objects.get(source=source, source_pk="c")
    assert where(c.pk) == partitions.partition_name(2024, 4)
    assert ModelUsage.objects.filter(source=source).count() == 4
    assert_rollups_equal_ledger()
    # The admin: edit moving the month, delete; recompute_costs.
    b.timestamp, b.cost = utc(2024, 2, 1), None
    ledger.save_usage(b)
    assert where(b.pk) == partitions.partition_name(2024, 2)
    assert ledger.reprice([b.pk], book) == []  # no price: stays unpriced
    ledger.delete_usage([c])
    assert not ModelUsage.objects.filter(pk=c.pk).exists()
    assert_rollups_equal_ledger()
    # A key that exists in another month is refused as new, as a unique index would.
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger.add_usage([_row("a", source=source, timestamp=utc(2024, 4, 2))])
    assert_no_key_twice()
    assert_rollups_equal_ledger()


@pytest.mark.django_db
def test_a_connection_that_believes_the_ledger_plain_switches_over(partitioned_ledger, settings):
    """A worker whose connection read the ledger plain before the swap: its
    first insert fails on the missing global index and it takes the
    partitioned path, with no duplicate."""
    settings.TIME_ZONE = "UTC"
    source = f.SourceFactory()
    ledger.upsert_usage(source, [_row("a")])
    ledger.set_partitioned(False)
    result = ledger.upsert_usage(source, [_row("a", timestamp=utc(2024, 2, 3)), _row("n")])
    assert ledger.partitioned()
    assert (len(result["created"]), len(result["updated"])) == (1, 1)
    ledger.set_partitioned(False)
    values = {"model_name": "m", "provider": "p", "timestamp": utc(2024, 4, 3), "cost": None}
    result = ledger.copy_upsert(source, {"a": values, "z": values}, ledger.PriceBook())
    assert ledger.partitioned()
    assert (len(result["created"]), len(result["updated"])) == (1, 1)
    assert ModelUsage.objects.filter(source=source).count() == 3
    assert_no_key_twice()
    assert_rollups_equal_ledger()


@pytest.mark.django_db
def test_outliers_land_in_their_month_or_default(partitioned_ledger, settings):
    settings.TIME_ZONE = "UTC"
    now = dt.datetime.now(dt.UTC)
    tomorrow = now + dt.timedelta(days=1) - dt.timedelta(minutes=1)  # the latest allowed
    rows = ledger.add_usage(
        [
            _row(timestamp=utc(2000, 1, 1)),  # the earliest allowed: no partition
            _row(timestamp=tomorrow),
            _row(timestamp=utc(2024, 3, 1)),  # the first instant of March
            _row(timestamp=utc(2024, 2, 29, 23, 59, 59, 999_999)),
            _row(timestamp=utc(2024, 5, 1)),  # a month with no partition
        ]
    )
    assert [where(row.pk) for row in rows] == [
        partitions.DEFAULT,
        partitions.partition_name(tomorrow.year, tomorrow.month),
        partitions.partition_name(2024, 3),
        partitions.partition_name(2024, 2),
        partitions.DEFAULT,
    ]
    assert_rollups_equal_ledger()


@pytest.mark.django_db
def test_creating_partitions_is_idempotent_and_empties_default(partitioned_ledger, settings):
    settings.TIME_ZONE = "UTC"
    source = f.SourceFactory()
    june = ledger.upsert_usage(source, [_row("j1", timestamp=utc(2024, 6, 30, 23)), _row("j2")])
    assert where(june["created"][0].pk) == partitions.DEFAULT
    before = {r.usage: list(r.rows().values_list(*r.grain, *SUMMED)) for r in ROLLUPS}

    call_command("create_ledger_partitions", "--since", "2024-06", "--months-ahead", "3")
    assert where(june["created"][0].pk) == partitions.partition_name(2024, 6)
    names = {name for name, _ in partitions.partitions()}
    year, month = partitions.this_month()
    for n in range(4):
        assert partitions.partition_name(*partitions.add_months(year, month, n)) in names
    assert partitions.partition_name(2024, 5) not in names  # before --since

    count = len(names)
    call_command("create_ledger_partitions", "--since", "2024-06", "--months-ahead", "3")
    assert len(partitions.partitions()) == count
    assert {r.usage: list(r.rows().values_list(*r.grain, *SUMMED)) for r in ROLLUPS} == before
    # The moved row is still found, updated and kept unique by its key.
    moved = ledger.upsert_usage(source, [_row("j1", timestamp=utc(2024, 6, 1))])
    assert len(moved["updated"]) == 1
    assert_no_key_twice()
    assert_rollups_equal_ledger()


@pytest.mark.django_db
def test_create_partitions_refuses_a_plain_ledger():
    with pytest.raises(CommandError, match="not partitioned"):
        call_command("create_ledger_partitions")
    with pytest.raises(CommandError, match="not partitioned"):
        call_command("detach_ledger_partition", "2024-02")


@pytest.mark.django_db
def test_detaching_a_month_is_audited_and_leaves_the_rollups(partitioned_ledger, settings):
    settings.TIME_ZONE = "UTC"
    source = f.SourceFactory()
    ann = f.AppUserFactory(organization=f.OrganizationFactory())
    ledger.upsert_usage(
        source,
        [
            _row("f1", user=ann, timestamp=utc(2024, 2, 29, 23, 59, 59), cost=Decimal("1.25")),
            _row("f2", timestamp=utc(2024, 2, 1), cost=None, request_time_ms=None),
            _row("m1", user=ann, timestamp=utc(2024, 3, 1), cost=Decimal("0.5")),
        ],
    )
    call_command("detach_ledger_partition", "2024-02", verbosity=0)

    feb = partitions.partition_name(2024, 2)
    assert feb not in {name for name, _ in partitions.partitions()}
    assert list(ModelUsage.objects.values_list("source_pk", flat=True)) == ["m1"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT source_pk FROM {feb} ORDER BY source_pk")  # noqa: S608
        assert cursor.fetchall() == [("f1",), ("f2",)]  # kept for archive
    assert_rollups_equal_ledger()
    # February is gone from every roll-up, March is whole.
    for rollup in ROLLUPS:
        assert not rollup.rows().filter(day__lt=dt.date(2024, 3, 1)).exists(), rollup
    entry = AuditLog.objects.get(action="detach_ledger_partition")
    assert entry.resource_id == feb
    assert entry.old_values["rows"] == 2
    assert Decimal(entry.old_values["cost"]) == Decimal("1.25")
    assert entry.new_values == {"archived_table": feb, "dropped": False}

    with pytest.raises(CommandError, match="not a partition"):
        call_command("detach_ledger_partition", "2024-02")
    year, month = partitions.this_month()
    with pytest.raises(CommandError, match="before the current one"):
        call_command("detach_ledger_partition", f"{year:04d}-{month:02d}")
    with pytest.raises(CommandError, match="not a month"):
        call_command("detach_ledger_partition", "2024-13")
    call_command("detach_ledger_partition", "2024-03", "--drop", verbosity=0)
    assert partitions.relkind(connection.cursor(), partitions.partition_name(2024, 3)) is None
    assert not ModelUsage.objects.exists()
    assert_rollups_equal_ledger()
    assert AuditLog.objects.filter(action="detach_ledger_partition").count() == 2


@pytest.mark.django_db
def test_the_command_converts_once_and_drops_the_old_table(settings, capsys):
    settings.TIME_ZONE = "UTC"
    source = f.SourceFactory()
    ledger.upsert_usage(source, [_row(f"r{n}", timestamp=utc(2024, 3, 1 + n)) for n in range(5)])
    call_command("partition_ledger", "--batch-size", "2")
    out = capsys.readouterr().out
    assert "copied ids up to" in out and "Partitioned the ledger: 5 rows copied" in out
    assert partitions.state() == "partitioned"
    call_command("partition_ledger")
    assert "already partitioned" in capsys.readouterr().out
    call_command("partition_ledger", "--drop-old")
    with connection.cursor() as cursor:
        assert partitions.relkind(cursor, partitions.OLD) is None
    assert ModelUsage.objects.count() == 5
    assert_rollups_equal_ledger()
    ledger.set_partitioned(False)  # the test's transaction rolls the conversion back


@pytest.mark.django_db
def test_a_foreign_key_to_the_ledger_stops_the_conversion():
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE usage_queryanalytics ADD CONSTRAINT qa_usage_fk "
            "FOREIGN KEY (usage_id) REFERENCES usage_modelusage (id)"
        )
    with pytest.raises(CommandError, match="run migrate first"):
        call_command("partition_ledger")
    assert partitions.state() == "plain"


@pytest.mark.django_db
def test_deleting_a_ledger_row_still_unlinks_its_query_analytics(partitioned_ledger):
    (row,) = ledger.add_usage([_row()])
    analytics = f.QueryAnalyticsFactory(usage=row)
    ledger.delete_usage([row])
    analytics.refresh_from_db()
    assert analytics.usage_id is None


# -- the pages --------------------------------------------------------------------------

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"|csrftoken=[^;"]+')


def _pages(client, awkward):
    urls = [
        reverse("dashboards:overview") + "?period=30d",
        reverse("dashboards:models") + "?period=30d",
        reverse("dashboards:user", args=[awkward.ann.pk]) + "?period=30d",
        reverse("dashboards:organization", args=[awkward.acme.pk]) + "?period=30d",
        reverse("admin:usage_modelusage_changelist"),
        drill.ledger_url(dt.date(2024, 3, 13), Scope()),  # one day's rows
    ]
    pages = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = CSRF.sub("", response.content.decode())
    return pages


@pytest.mark.django_db
def test_pages_show_the_same_figures_after_the_conversion(client, awkward, fixed_today, settings):
    client.force_login(f.UserFactory(is_staff=True, is_superuser=True))
    before = _pages(client, awkward)
    assert "gpt-4o" in before[reverse("dashboards:models") + "?period=30d"]
    changelist = before[reverse("admin:usage_modelusage_changelist")]
    assert len(re.findall(r'href="/admin/usage/modelusage/\d+/change/', changelist)) >= 20
    convert()
    try:
        assert ledger.partitioned()
        after = _pages(client, awkward)
        for url, page in before.items():
            assert after[url] == page, url
    finally:
        ledger.set_partitioned(False)  # the test's transaction rolls the conversion back
