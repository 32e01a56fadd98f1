from django.urls import path

from usage import review_metrics

from . import views

app_name = "quality"

urlpatterns = [
    path("code/", views.code, name="code"),
    path("code/executions/", views.execution_list, name="executions"),
    path("feedback/", views.feedback, name="feedback"),
    path("activity/", views.activity, name="activity"),
    path("text-to-sql/", views.text_to_sql, name="text_to_sql"),
    path("reviews/", review_metrics.review_quality, name="reviews"),
]
