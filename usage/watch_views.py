"""The spend watch's page: what watch_spend sent, to whom, and how it went;
the models without a price; the channels. Managers and Admins
(usage.views.dashboard)."""

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.shortcuts import render

from .models import Delivery, Notification, NotificationChannel
from .pricebook import unpriced_models
from .views import dashboard

PER_PAGE = 50


@dashboard
def alerts(request):
    kind = request.GET.get("kind", "")
    failed_only = request.GET.get("status") == "failed"
    notifications = Notification.objects.select_related("budget").prefetch_related(
        Prefetch("deliveries", queryset=Delivery.objects.order_by("pk"))
    )
    if kind in Notification.Kind.values:
        notifications = notifications.filter(kind=kind)
    if failed_only:
        notifications = notifications.filter(deliveries__status=Delivery.Status.FAILED).distinct()
    page = Paginator(notifications.order_by("-created_at", "-pk"), PER_PAGE).get_page(
        request.GET.get("page")
    )
    failures = Delivery.objects.aggregate(n=Count("pk", filter=Q(status=Delivery.Status.FAILED)))
    context = {
        **admin.site.each_context(request),
        "title": "Alerts",
        "page": page,
        "kind": kind,
        "kinds": Notification.Kind.choices,
        "failed_only": failed_only,
        "failed_deliveries": failures["n"],
        "unpriced": unpriced_models(),
        "channels": list(NotificationChannel.objects.order_by("name")),
    }
    return render(request, "usage/watch_alerts.html", context)
