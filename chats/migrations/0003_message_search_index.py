"""Full-text search index on message text (PostgreSQL only).

An expression GIN index matching chats.search's query exactly:
to_tsvector('english', COALESCE(content, '')). Built CONCURRENTLY so a
large message table stays writable; SQLite has no such index and searches
by substring instead.
"""

from django.db import migrations

INDEX = "chats_msg_content_fts"
CREATE = (
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON chats_message "
    "USING gin (to_tsvector('english'::regconfig, COALESCE(content, '')))"
)
DROP = f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}"


def on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chats", "0002_message_ordering")]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
