"""``{% review_quality %}``: the quality-from-reviews section (#19.4) on a
page that does not compute it itself (the models page)."""

from django import template

from usage import review_metrics

register = template.Library()


@register.inclusion_tag("usage/_review_quality.html", takes_context=True)
def review_quality(context):
    period = context.get("period")
    start, end = getattr(period, "start", None), getattr(period, "end", None)
    return {
        "period": period,
        "perms": context.get("perms"),
        "review_quality": review_metrics.summary(start, end),
        "full": False,
    }
