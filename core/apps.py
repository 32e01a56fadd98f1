from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core: identity, access and configuration"

    def ready(self):
        # Connect the audit receivers (logins) and register the system
        # checks of the encryption keys.
        from . import crypto, signals  # noqa: F401
