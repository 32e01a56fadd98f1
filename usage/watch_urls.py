from django.urls import path

from . import watch_views

app_name = "watch"

urlpatterns = [
    path("", watch_views.alerts, name="alerts"),
]
