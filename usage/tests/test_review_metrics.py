"""Quality per model from the reviews (#19.4), each figure against plain SQL
on the raw rows, on awkward data: no reviews, a model judged all wrong,
reviewed chats without ledger rows or with NULL costs, anonymous chats, two
answers of one chat, answers either side of a month boundary, items without
a final verdict; and the Wilson interval against known values.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from chats.models import MistakeCategory, ReviewItem
from core.tests import factories as f
from usage import review_metrics

from ..review_metrics import wilson

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _utc(settings):
    settings.TIME_ZONE = "UTC"


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


def judged_item(queue, model, verdict, chat, when, categories=(), status="done"):
    msg = f.MessageFactory(chat=chat, role="assistant", created_at=when, model_name=model)
    item = f.ReviewItemFactory(
        queue=queue, message=msg, model_name=model or "", status=status, verdict=verdict
    )
    review = f.ReviewFactory(item=item, verdict=verdict or "correct")
    review.categories.set(MistakeCategory.objects.filter(slug__in=categories))
    return item


@pytest.fixture
def world():
    queue = f.ReviewQueueFactory()
    src = f.SourceFactory(name="auto-analyst")
    paid = f.ChatFactory(source=src)  # two answers, two ledger rows
    anonymous = f.ChatFactory(user=None)  # a NULL cost and a priced row
    bare = f.ChatFactory()  # no ledger rows at all
    only_null = f.ChatFactory()  # ledger rows, every cost NULL
    f.ModelUsageFactory(chat=paid, cost=Decimal("0.50000000"))
    f.ModelUsageFactory(chat=paid, cost=Decimal("0.25000000"))
    f.ModelUsageFactory(chat=anonymous, user=None, cost=None)
    f.ModelUsageFactory(chat=anonymous, user=None, cost=Decimal("1.00000000"))
    f.ModelUsageFactory(chat=only_null, cost=None)
    f.ModelUsageFactory(chat=f.ChatFactory(), cost=Decimal("9"))  # not reviewed

    jan_end, feb_start = utc(2026, 1, 31, 23, 30), utc(2026, 2, 1, 0, 30)
    judged_item(queue, "gpt-4o", "correct", paid, jan_end)
    judged_item(queue, "gpt-4o", "wrong", paid, jan_end, ["wrong-number", "other"])
    judged_item(queue, "gpt-4o", "correct", anonymous, feb_start)
    judged_item(queue, "gpt-4o", "partly", bare, feb_start, ["wrong-number"])
    judged_item(queue, "claude", "wrong", only_null, feb_start, ["code-error"])
    judged_item(queue, "claude", "wrong", bare, feb_start)
    judged_item(queue, None, "correct", f.ChatFactory(), feb_start)  # model unknown
    # not counted: pending, and a disagreement not settled yet
    judged_item(queue, "gpt-4o", None, paid, jan_end, status="pending")
    judged_item(queue, "gpt-4o", None, paid, jan_end, status="done")
    return queue


def sql(query, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def month_sql(column):
    if connection.vendor == "postgresql":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"
    return f"strftime('%%Y-%%m', {column})"


def test_wilson_known_values():
    low, high = wilson(1, 10)
    assert (round(low, 4), round(high, 4)) == (0.0179, 0.4042)
    low, high = wilson(0, 5)
    assert low == 0 and round(high, 4) == 0.4345
    low, high = wilson(5, 5)
    assert round(low, 4) == 0.5655 and high == 1
    assert wilson(0, 0) is None


def test_no_reviews_no_rows():
    assert review_metrics.summary() == {
        "by_model": [],
        "by_source": [],
        "by_category": [],
        "cost": [],
    }


def test_error_rate_per_model_equals_sql(world):
    expected = {
        model: (n, wrong)
        for model, n, wrong in sql(
            "SELECT model_name, COUNT(*), SUM(CASE WHEN verdict = 'wrong' THEN 1 ELSE 0 END)"
            " FROM chats_reviewitem WHERE verdict IS NOT NULL GROUP BY model_name"
        )
    }

    rows = review_metrics.error_rates("model")

    assert {r["key"]: (r["judged"], r["wrong"]) for r in rows} == expected
    assert expected == {"gpt-4o": (4, 1), "claude": (2, 2), "": (1, 0)}
    claude = next(r for r in rows if r["key"] == "claude")
    assert claude["error_rate"] == 1
    assert (claude["low"], claude["high"]) == pytest.approx(wilson(2, 2))
    gpt = next(r for r in rows if r["key"] == "gpt-4o")
    assert (gpt["correct"], gpt["partly"], gpt["error_rate"]) == (2, 1, 0.25)


def test_error_rate_per_source_equals_sql(world):
    expected = {
        name or "": (n, wrong)
        for name, n, wrong in sql(
            "SELECT s.name, COUNT(*), SUM(CASE WHEN i.verdict = 'wrong' THEN 1 ELSE 0 END)"
            " FROM chats_reviewitem i LEFT JOIN core_source s ON s.id = i.source_id"
            " WHERE i.verdict IS NOT NULL GROUP BY s.name"
        )
    }
    rows = review_metrics.error_rates("source")
    assert {r["key"]: (r["judged"], r["wrong"]) for r in rows} == expected


def test_category_share_equals_sql(world):
    total = sql("SELECT COUNT(*) FROM chats_reviewitem WHERE verdict IS NOT NULL")[0][0]
    expected = dict(
        sql(
            "SELECT c.name, COUNT(DISTINCT i.id) FROM chats_reviewitem i"
            " JOIN chats_review r ON r.item_id = i.id"
            " JOIN chats_review_categories rc ON rc.review_id = r.id"
            " JOIN chats_mistakecategory c ON c.id = rc.mistakecategory_id"
            " WHERE i.verdict IS NOT NULL GROUP BY c.name"
        )
    )

    rows = review_metrics.category_rates()

    assert {r["key"]: r["answers"] for r in rows} == expected
    assert expected == {"Wrong number or statistic": 2, "Other": 1, "Code error": 1}
    assert all(r["judged"] == total == 7 for r in rows)
    top = rows[0]
    assert top["key"] == "Wrong number or statistic"
    assert top["share"] == pytest.approx(2 / 7)


def test_cost_per_good_answer_equals_sql(world):
    month = month_sql("m.created_at")
    expected = {
        (model, month_key): (judged, correct, chats, with_usage, spend)
        for model, month_key, judged, correct, chats, with_usage, spend in sql(
            f"""
            WITH judged AS (
                SELECT i.model_name, {month} AS month, i.verdict, m.chat_id
                FROM chats_reviewitem i JOIN chats_message m ON m.id = i.message_id
                WHERE i.verdict IS NOT NULL
            ), chats AS (
                SELECT DISTINCT model_name, month, chat_id FROM judged
            ), spend AS (
                SELECT c.model_name, c.month, COUNT(DISTINCT u.chat_id) AS with_usage,
                       SUM(u.cost) AS spend
                FROM chats c JOIN usage_modelusage u ON u.chat_id = c.chat_id
                GROUP BY c.model_name, c.month
            ), groups AS (
                SELECT model_name, month, COUNT(*) AS judged,
                       SUM(CASE WHEN verdict = 'correct' THEN 1 ELSE 0 END) AS correct,
                       COUNT(DISTINCT chat_id) AS chats
                FROM judged GROUP BY model_name, month
            )
            SELECT g.model_name, g.month, g.judged, g.correct, g.chats,
                   COALESCE(s.with_usage, 0), COALESCE(s.spend, 0)
            FROM groups g LEFT JOIN spend s
              ON s.model_name = g.model_name AND s.month = g.month
            """
        )
    }

    rows = review_metrics.cost_per_good_answer()

    got = {
        (r["model"], r["month"].strftime("%Y-%m")): (
            r["judged"],
            r["correct"],
            r["chats"],
            r["chats_with_usage"],
            r["spend"],
        )
        for r in rows
    }
    assert got.keys() == expected.keys()
    for key, (judged, correct, chats, with_usage, spend) in expected.items():
        assert got[key][:4] == (judged, correct, chats, with_usage), key
        assert float(got[key][4]) == pytest.approx(float(spend)), key
    by_key = {(r["model"], r["month"].strftime("%Y-%m")): r for r in rows}
    # January: one chat, two answers (one correct): its spend counted once
    assert by_key[("gpt-4o", "2026-01")]["spend"] == Decimal("0.75")
    assert by_key[("gpt-4o", "2026-01")]["cost_per_good"] == Decimal("0.75")
    # February: the anonymous chat's priced row only; the bare chat adds nothing
    assert by_key[("gpt-4o", "2026-02")]["spend"] == Decimal("1")
    assert by_key[("gpt-4o", "2026-02")]["chats_with_usage"] == 1
    # every answer wrong: no good answer, no cost per good answer
    assert by_key[("claude", "2026-02")]["cost_per_good"] is None
    assert by_key[("claude", "2026-02")]["spend"] == 0
    # reviews without usage rows
    assert by_key[("", "2026-02")]["chats_with_usage"] == 0
    assert by_key[("", "2026-02")]["cost_per_good"] == 0


def test_period_filters_by_the_answers_day(world):
    rows = review_metrics.error_rates("model", dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert {r["key"]: (r["judged"], r["wrong"]) for r in rows} == {
        "gpt-4o": (2, 0),
        "claude": (2, 2),
        "": (1, 0),
    }


def test_the_models_page_and_the_quality_page_show_them(client, world):
    client.force_login(f.UserFactory(groups=["Managers"]))

    models = client.get(reverse("dashboards:models"), {"period": "custom"})
    quality = client.get(reverse("quality:reviews"))

    assert quality.status_code == 200
    html = quality.content.decode()
    assert "Quality from reviews" in html and "By mistake category" in html
    assert "claude" in html and "100.0%" in html
    assert models.status_code == 200
    assert 'id="review-quality"' in models.content.decode()


def test_reviewed_item_model_comes_from_the_queue_fill():
    """An answer reviewed in two queues counts in each."""
    msg = f.MessageFactory(role="assistant", model_name="gpt-4o")
    for _ in range(2):
        f.ReviewItemFactory(message=msg, model_name="gpt-4o", verdict="correct", status="done")
    assert ReviewItem.objects.filter(verdict="correct").count() == 2
    assert review_metrics.error_rates("model")[0]["judged"] == 2
