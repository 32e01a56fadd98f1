from django.urls import path

from . import views

app_name = "review"

urlpatterns = [
    path("chats/<int:pk>/", views.chat_transcript, name="transcript"),
    path("messages/<int:pk>/mistake/", views.flag_mistake, name="flag_mistake"),
    path("feedback/", views.feedback_queue, name="feedback_queue"),
    path("search/", views.message_search, name="search"),
]
