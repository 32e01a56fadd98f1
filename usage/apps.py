from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and cost"

    def ready(self):
        from . import signals  # noqa: F401 (connects the receivers)
