"""Give the groups the permissions of models added since 0002 (DailyLatency)."""

from django.db import migrations

from core.roles import sync_groups


def sync(apps, schema_editor):
    sync_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_changelist_indexes"),
        ("usage", "0003_changelist_indexes"),
    ]

    # Backwards: the groups keep what they had; 0002's reverse removes them.
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
