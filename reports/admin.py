"""Admin of deep-analysis reports and analysis results.

Machine output (summaries, figures, synthesis, generated code and the HTML
report's source) is read-only and escaped: the HTML report is shown as
source text here, never rendered.
"""

from django.contrib import admin

from core.admin_tools import (
    PROVENANCE,
    BaseAdmin,
    BigTableAdmin,
    RecentPeriodFilter,
    RelatedIdFilter,
)
from reports.models import AnalysisResult, DeepAnalysisReport


@admin.register(DeepAnalysisReport)
class DeepAnalysisReportAdmin(BaseAdmin):
    list_display = (
        "__str__",
        "user",
        "status",
        "progress_percentage",
        "total_tokens_used",
        "estimated_cost",
        "duration_seconds",
        "created_at",
    )
    list_select_related = ("user",)
    list_filter = ("status", RelatedIdFilter.for_field("user"), "source")
    search_fields = ("report_uuid__exact", "goal")
    ordering = ("-created_at",)  # reports_dar_created_idx
    date_hierarchy = "created_at"
    autocomplete_fields = ("user",)
    readonly_fields = ("created_at", "updated_at")
    pretty_json_fields = ("summaries", "plotly_figures", "synthesis")
    pre_text_fields = ("deep_questions", "deep_plan", "analysis_code", "html_report")
    fieldsets = (
        (None, {"fields": ("report_uuid", "user", "goal", "status", "progress_percentage")}),
        (
            "Timing and cost",
            {
                "fields": (
                    ("start_time", "end_time", "duration_seconds"),
                    ("total_tokens_used", "estimated_cost", "credits_consumed"),
                )
            },
        ),
        (
            "Analysis",
            {
                "fields": (
                    "deep_questions",
                    "deep_plan",
                    "summaries",
                    "analysis_code",
                    "synthesis",
                    "final_conclusion",
                )
            },
        ),
        ("Output", {"classes": ("collapse",), "fields": ("plotly_figures", "html_report")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
        PROVENANCE,
    )


@admin.register(AnalysisResult)
class AnalysisResultAdmin(BigTableAdmin):
    list_display = ("__str__", "chat", "analysis_type", "file", "created_at")
    list_select_related = ("chat", "file")
    list_filter = (
        RecentPeriodFilter.for_field("created_at"),
        RelatedIdFilter.for_field("chat"),
        "source",
    )
    search_fields = ("analysis_type__exact",)
    ordering = ("-created_at",)
    raw_id_fields = ("chat", "file")
    readonly_fields = ("created_at",)
    pretty_json_fields = ("result_data", "visualizations", "result_metadata")
