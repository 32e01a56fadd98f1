from django.urls import path

from . import views

app_name = "dashboards"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("models/", views.models, name="models"),
    # A model name may hold slashes, dots and colons ("openai/gpt-4o:2024-08-06"):
    # the path converter takes the rest of the path; a provider has no slash.
    path("models/<str:provider>/<path:model_name>/", views.model, name="model"),
    path("users/<int:pk>/", views.app_user, name="user"),
    path("organizations/<int:pk>/", views.organization, name="organization"),
]
