"""The app user's admin page with its real usage: the tokens, cost and
requests of its last 30 days from the roll-ups (the source applications'
own ``token_usage`` counter is often 0), and a link to its spend page,
which links back here. Registered over core's AppUserAdmin (core imports
no app above it)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import AppUserAdmin
from core.models import AppUser
from core.pages.period import Period, Scope

from . import metrics
from .templatetags.figures import figure

SPEND_PERIOD = "30d"


class AppUserSpendAdmin(AppUserAdmin):
    readonly_fields = (*AppUserAdmin.readonly_fields, "ledger_usage", "reported_token_usage")

    def get_fieldsets(self, request, obj=None):
        """The Activity fieldset leads with the ledger's usage; the source
        app's own counter is labelled as what it is."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        replaced = {"token_usage": "reported_token_usage"}
        return [
            (
                name,
                {
                    **options,
                    "fields": (
                        "ledger_usage",
                        *(replaced.get(field, field) for field in options["fields"]),
                    ),
                },
            )
            if name == "Activity"
            else (name, options)
            for name, options in fieldsets
        ]

    @admin.display(description="Token usage reported by the source app")
    def reported_token_usage(self, obj):
        return figure(obj.token_usage, "number")

    @admin.display(description="Token usage (ledger, last 30 days)")
    def ledger_usage(self, obj):
        if obj is None or obj.pk is None:
            return self.get_empty_value_display()
        period = Period.preset(SPEND_PERIOD)
        rows = metrics.current_reader().user_rows(
            period, Scope(user_id=obj.pk), **metrics.SPEND_SUMS
        )
        row = next(iter(rows), {})
        spend = metrics.spend_of(row)
        url = f"{reverse('dashboards:user', args=[obj.pk])}?period={SPEND_PERIOD}"
        return format_html(
            '{} tokens, {} in {} requests · <a href="{}">spend page</a>',
            figure(spend["tokens"], "number"),
            figure(spend["cost"], "money"),
            figure(spend["requests"], "number"),
            url,
        )


admin.site.unregister(AppUser)
admin.site.register(AppUser, AppUserSpendAdmin)
