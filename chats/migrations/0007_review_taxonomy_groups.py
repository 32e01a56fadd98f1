"""The default mistake taxonomy for analyst applications, and the groups'
review permissions (core.roles)."""

from django.db import migrations

from core.roles import sync_groups

TAXONOMY = [
    ("wrong-number", "Wrong number or statistic", "A figure, total or statistic is wrong."),
    (
        "wrong-column",
        "Wrong or invented column or table",
        "Names a column or table that is not there, or the wrong one.",
    ),
    ("code-error", "Code error", "The generated code fails or computes something else."),
    ("wrong-chart", "Wrong chart", "The chart misleads, or is not the one asked for."),
    ("misread-question", "Misread question", "Answers another question than the one asked."),
    (
        "private-data",
        "Private or unsafe data",
        "Shows personal or confidential data, or does something unsafe.",
    ),
    ("needless-refusal", "Needless refusal", "Refuses a question it could answer."),
    ("other", "Other", "Anything else: say what in the note."),
]


def add_taxonomy(apps, schema_editor):
    MistakeCategory = apps.get_model("chats", "MistakeCategory")
    for position, (slug, name, description) in enumerate(TAXONOMY, start=1):
        MistakeCategory.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "position": position}
        )


def remove_taxonomy(apps, schema_editor):
    MistakeCategory = apps.get_model("chats", "MistakeCategory")
    MistakeCategory.objects.filter(slug__in=[slug for slug, _, _ in TAXONOMY]).delete()


def sync(apps, schema_editor):
    sync_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("chats", "0006_review_queues"),
        ("core", "0002_staff_groups"),
    ]

    # Backwards: the taxonomy goes; the groups keep what they had (core 0002's
    # reverse removes them).
    operations = [
        migrations.RunPython(add_taxonomy, remove_taxonomy),
        migrations.RunPython(sync, migrations.RunPython.noop),
    ]
