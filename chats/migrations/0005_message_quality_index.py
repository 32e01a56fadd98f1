"""A partial, covering index for the models page's mistake share per model.

usage.metrics._quality_by_model counts a period's assistant messages that
carry a model name, per model name. Without this index PostgreSQL walks every
message of the period through chats_msg_created_idx (555 ms for 30 days of 2M
messages in bench/pages_bench.py); with it, an index-only scan of the
matching rows alone (63 ms). SQLite builds it without the INCLUDE columns.

Database only (SeparateDatabaseAndState), like the full-text index of 0003:
Message.Meta.indexes does not list it, so makemigrations sees no change.
"""

from django.db import migrations, models

from core.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    # Built without locking writes to a table that grows.
    atomic = False

    dependencies = [("chats", "0004_changelist_indexes")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                AddIndexConcurrently(
                    model_name="message",
                    index=models.Index(
                        fields=["created_at"],
                        include=["model_name", "is_mistake", "id"],
                        condition=models.Q(role="assistant", model_name__isnull=False),
                        name="chats_msg_quality_idx",
                    ),
                ),
            ],
        ),
    ]
