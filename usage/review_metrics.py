"""Quality per model from the reviews (#19.4).

An answer counts once it has a final verdict (``ReviewItem.verdict``: the
reviewers' when they agree, an Admin's when settled); an answer reviewed in
two queues counts in each. Periods are the answer's time (the message's
``created_at``) in local days and calendar months.

- Error rate: answers judged wrong ÷ answers judged, with a 95 % Wilson
  score interval, per model, per source and per mistake category (the share
  of judged answers a reviewer tagged with that category).
- Cost per good answer, per model and month: the spend of the reviewed
  chats (the sum of every ledger row of each distinct chat, NULL costs
  adding nothing) ÷ the answers judged correct. A chat reviewed under two
  models counts in both. The sample size is shown with it: answers judged,
  correct, chats, and how many of those chats have ledger rows.
"""

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth
from django.shortcuts import render
from django.utils import timezone

from chats.models import ReviewItem
from core.pages.views import admin_page

from .models import ModelUsage

Z_95 = 1.959963984540054
CHAT_BATCH = 2000
UNKNOWN_MODEL = ""


def wilson(k, n, z=Z_95):
    """(low, high) of the Wilson score interval of k successes in n; None for n = 0."""
    if n == 0:
        return None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _bounds(start=None, end=None):
    zone = timezone.get_current_timezone()
    low = high = None
    if start:
        low = dt.datetime.combine(start, dt.time.min, tzinfo=zone)
    if end:
        high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return low, high


def judged(start=None, end=None):
    """Items with a final verdict whose answer falls in [start, end] (local days)."""
    items = ReviewItem.objects.filter(verdict__isnull=False)
    low, high = _bounds(start, end)
    if low:
        items = items.filter(message__created_at__gte=low)
    if high:
        items = items.filter(message__created_at__lt=high)
    return items


def _rate_row(key, counts):
    n = sum(counts.values())
    wrong = counts.get(ReviewItem.Verdict.WRONG, 0)
    interval = wilson(wrong, n)
    return {
        "key": key,
        "judged": n,
        "correct": counts.get(ReviewItem.Verdict.CORRECT, 0),
        "partly": counts.get(ReviewItem.Verdict.PARTLY, 0),
        "wrong": wrong,
        "error_rate": wrong / n if n else None,
        "low": interval[0] if interval else None,
        "high": interval[1] if interval else None,
    }


def error_rates(by="model", start=None, end=None):
    """[row] per model (``by="model"``) or source (``by="source"``), most judged first."""
    field = {"model": "model_name", "source": "source__name"}[by]
    counts = defaultdict(dict)
    rows = (
        judged(start, end)
        .order_by()
        .values_list(field, "verdict")
        .annotate(n=Count("pk"))
        .values_list(field, "verdict", "n")
    )
    for key, verdict, n in rows:
        counts[key or UNKNOWN_MODEL][verdict] = n
    return sorted(
        (_rate_row(key, c) for key, c in counts.items()), key=lambda r: (-r["judged"], r["key"])
    )


def category_rates(start=None, end=None):
    """[row] per mistake category: judged answers a reviewer tagged with it."""
    items = judged(start, end)
    total = items.count()
    tagged = (
        items.filter(reviews__categories__isnull=False)
        .order_by()
        .values_list("reviews__categories__name", "pk")
        .distinct()
    )
    per = defaultdict(set)
    for name, pk in tagged:
        per[name].add(pk)
    result = []
    for name, pks in per.items():
        interval = wilson(len(pks), total)
        result.append(
            {
                "key": name,
                "answers": len(pks),
                "judged": total,
                "share": len(pks) / total if total else None,
                "low": interval[0] if interval else None,
                "high": interval[1] if interval else None,
            }
        )
    return sorted(result, key=lambda r: (-r["answers"], r["key"]))


def chat_spend(chat_ids):
    """{chat id: spend} of the ledger rows of those chats (chats without rows absent)."""
    spend = {}
    ids = sorted(chat_ids)
    for start in range(0, len(ids), CHAT_BATCH):
        rows = (
            ModelUsage.objects.filter(chat_id__in=ids[start : start + CHAT_BATCH])
            .order_by()
            .values_list("chat_id")
            .annotate(spend=Sum("cost"))
            .values_list("chat_id", "spend")
        )
        spend.update(rows)
    return spend


def cost_per_good_answer(start=None, end=None):
    """[row] per model and month (the answer's), newest month first."""
    rows = (
        judged(start, end)
        .annotate(month=TruncMonth("message__created_at"))
        .order_by()
        .values_list("model_name", "month", "message__chat_id", "verdict")
    )
    groups = defaultdict(lambda: {"judged": 0, "correct": 0, "chats": set()})
    for model, month, chat_id, verdict in rows:
        group = groups[(model or UNKNOWN_MODEL, timezone.localtime(month).date())]
        group["judged"] += 1
        group["correct"] += verdict == ReviewItem.Verdict.CORRECT
        group["chats"].add(chat_id)
    spend = chat_spend({c for g in groups.values() for c in g["chats"]})
    result = []
    for (model, month), group in groups.items():
        with_usage = [c for c in group["chats"] if c in spend]
        total = sum((spend[c] or Decimal(0) for c in with_usage), Decimal(0))
        result.append(
            {
                "model": model,
                "month": month,
                "judged": group["judged"],
                "correct": group["correct"],
                "chats": len(group["chats"]),
                "chats_with_usage": len(with_usage),
                "spend": total,
                "cost_per_good": total / group["correct"] if group["correct"] else None,
            }
        )
    return sorted(result, key=lambda r: (-r["month"].toordinal(), r["model"]))


def summary(start=None, end=None):
    return {
        "by_model": error_rates("model", start, end),
        "by_source": error_rates("source", start, end),
        "by_category": category_rates(start, end),
        "cost": cost_per_good_answer(start, end),
    }


@admin_page("chats.view_review_results")
def review_quality(request):
    """The quality page: every figure above, over every review."""
    from django.contrib import admin

    context = {
        **admin.site.each_context(request),
        "title": "Quality from reviews",
        "review_quality": summary(),
    }
    return render(request, "quality/review_quality.html", context)
