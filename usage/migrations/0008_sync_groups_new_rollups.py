"""Give the groups the permissions of the roll-ups added in 0007."""

from django.db import migrations

from core.roles import sync_groups


def sync(apps, schema_editor):
    sync_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0007_user_and_total_rollups"),
    ]

    # Backwards: the groups keep what they had; core 0002's reverse removes them.
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
