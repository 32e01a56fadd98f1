from django.urls import path
from django.views.generic import RedirectView

from usage import review_metrics

from . import views

app_name = "quality"

urlpatterns = [
    # /admin/quality/ itself: the first of the quality pages
    path("", RedirectView.as_view(pattern_name="quality:code"), name="index"),
    path("code/", views.code, name="code"),
    path("code/executions/", views.execution_list, name="executions"),
    path("feedback/", views.feedback, name="feedback"),
    path("activity/", views.activity, name="activity"),
    path("text-to-sql/", views.text_to_sql, name="text_to_sql"),
    path("reviews/", review_metrics.review_quality, name="reviews"),
]
