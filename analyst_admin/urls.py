from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from core import views as core_views
from ingest.api import api as ingest_api
from ingest.api import docs as ingest_docs

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # for load balancers and monitors: no login, checks the database
    path("health/", core_views.health, name="health"),
    path("admin/dashboards/", include("usage.urls")),
    path("admin/review/", include("chats.urls")),
    path("admin/quality/", include("analytics.urls")),
    path("admin/reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
    # the ingest API; its interactive docs are for logged-in staff
    path("api/v1/docs", ingest_docs, name="api-docs"),
    path("api/v1/", ingest_api.urls),
]

# A database error anywhere in a request answers 503, not 500 (core.views).
handler500 = "core.views.server_error"
