from django.urls import path

from . import views

app_name = "dashboards"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("models/", views.models, name="models"),
    path("users/<int:pk>/", views.app_user, name="user"),
    path("organizations/<int:pk>/", views.organization, name="organization"),
]
