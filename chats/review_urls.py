from django.urls import path

from . import review_views as views

app_name = "queues"

urlpatterns = [
    path("", views.queue_list, name="list"),
    path("<int:pk>/", views.queue_detail, name="queue"),
    path("<int:pk>/start/", views.start, name="start"),
    path("items/<int:pk>/", views.review_item, name="item"),
    path("items/<int:pk>/settle/", views.settle, name="settle"),
    path("disagreements/", views.disagreement_list, name="disagreements"),
    path("results/", views.results, name="results"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("export.jsonl", views.export_jsonl, name="export_jsonl"),
]
