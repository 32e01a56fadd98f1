"""Create the Staff, Managers and Admins groups with their permissions."""

from django.db import migrations

from core.roles import GROUPS, sync_groups


def create_groups(apps, schema_editor):
    sync_groups(apps)


def delete_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=[*GROUPS, "Admins"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("chats", "0001_initial"),
        ("usage", "0001_initial"),
        ("reports", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
