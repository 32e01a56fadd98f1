from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """The quality, activity and text-to-SQL pages over chats' tables: no
    models of its own; it sits on top of chats, usage and core."""

    name = "analytics"
    verbose_name = "Analytics"
