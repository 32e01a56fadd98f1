from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from core import views as core_views
from ingest.api import api as ingest_api
from ingest.api import docs as ingest_docs
from ingest.api import otel

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # for load balancers and monitors: no login, checks the database
    path("health/", core_views.health, name="health"),
    path("admin/dashboards/alerts/", include("usage.watch_urls")),
    path("admin/dashboards/", include("usage.urls")),
    path("admin/review/queues/", include("chats.review_urls")),
    path("admin/review/", include("chats.urls")),
    path("admin/quality/", include("analytics.urls")),
    path("admin/reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
    # the ingest API; its interactive docs are for logged-in staff
    path("api/v1/docs", ingest_docs, name="api-docs"),
    # OpenTelemetry traces (OTLP/HTTP); an exporter appends v1/traces to its base URL
    path("api/v1/otel/v1/traces", otel.traces, name="otel-traces"),
    path("api/v1/", ingest_api.urls),
]

# A database error anywhere in a request answers 503, not 500 (core.views).
handler500 = "core.views.server_error"
# 403 and 404 inside the admin's frame, with the reason and a way back.
handler403 = "core.error_pages.permission_denied"
handler404 = "core.error_pages.page_not_found"
