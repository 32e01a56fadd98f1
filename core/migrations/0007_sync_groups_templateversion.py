"""Give the Admins group the permissions of TemplateVersion (added in 0006)."""

from django.db import migrations

from core.roles import sync_groups


def sync(apps, schema_editor):
    sync_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0006_templateversion"),
    ]

    # Backwards: the groups keep what they had; 0002's reverse removes them.
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
