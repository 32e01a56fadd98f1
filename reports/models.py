"""Deep-analysis reports and analysis results."""

from django.db import models
from django.utils import timezone

from chats.models import Chat, UploadedFile
from core.models import AppUser, Imported


class DeepAnalysisReport(Imported):
    """auto-analyst ``deep_analysis_reports``: a multi-agent analysis."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    report_uuid = models.CharField(max_length=100, unique=True)
    user = models.ForeignKey(
        AppUser,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deep_analysis_reports",
    )
    goal = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    start_time = models.DateTimeField(null=True, blank=True, default=timezone.now)
    end_time = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.IntegerField(null=True, blank=True)
    deep_questions = models.TextField(null=True, blank=True)
    deep_plan = models.TextField(null=True, blank=True)
    summaries = models.JSONField(null=True, blank=True)
    analysis_code = models.TextField(null=True, blank=True)
    plotly_figures = models.JSONField(null=True, blank=True)
    synthesis = models.JSONField(null=True, blank=True)
    final_conclusion = models.TextField(null=True, blank=True)
    html_report = models.TextField(null=True, blank=True)
    progress_percentage = models.IntegerField(default=0)
    total_tokens_used = models.BigIntegerField(default=0)
    estimated_cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    credits_consumed = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta(Imported.Meta):
        verbose_name = "deep-analysis report"
        ordering = ["-created_at"]
        constraints = [
            *Imported.Meta.constraints,
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "running", "completed", "failed"]),
                name="reports_report_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(progress_percentage__gte=0, progress_percentage__lte=100),
                name="reports_report_progress_0_100",
            ),
        ]
        indexes = [
            # seed: deep_analysis_reports(user_id, created_at DESC) — a user's reports
            models.Index(fields=["user", "-created_at"], name="reports_dar_user_created_idx"),
            # report list newest first
            models.Index(fields=["-created_at"], name="reports_dar_created_idx"),
        ]

    def __str__(self):
        return self.goal if len(self.goal) <= 80 else self.goal[:77] + "…"


class AnalysisResult(Imported):
    """ds-ml-agent ``chatbot_analysis_results``."""

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="analysis_results")
    analysis_type = models.CharField(max_length=50)
    file = models.ForeignKey(
        UploadedFile,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="analysis_results",
    )
    result_data = models.JSONField(null=True, blank=True)
    visualizations = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    result_metadata = models.JSONField(null=True, blank=True)

    class Meta(Imported.Meta):
        ordering = ["-created_at"]
        indexes = [
            # analysis-result changelist, newest first
            models.Index(fields=["-created_at"], name="reports_result_created_idx"),
        ]

    def __str__(self):
        return f"{self.analysis_type} result {self.pk}"
