"""manage.py import_source KIND URL: bring an analyst application's data in.

Idempotent and incremental: rows are matched by (source, source_pk), and a
later run reads only what is new or changed (see ingest/importers/engine.py).
Exit codes: 0 when the run went through, even if some rows were refused or
values dropped (they are in the report, and a scheduled import must not stop
a whole application's data for one bad row: a row that fails for any reason
is refused and the run goes on); 1 when the source cannot be read (absent,
not of the kind, not answering) or our own database failed part-way
(committed batches stay, a rerun continues from there).
"""

from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.models import Source
from ingest.importers import MAPPINGS
from ingest.importers.engine import ABSENT, IGNORED, Importer, SchemaMismatch, check_schema
from ingest.importers.readers import SourceError, open_source, safe_url, scrubbed
from ingest.importers.report import Report, reasons_table, summary_table


def default_report_path(kind):
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(settings.BASE_DIR) / "var" / "import-rejects" / f"{kind}-{stamp}.jsonl"


class Command(BaseCommand):
    help = (
        "Import an analyst application's own database (SQLite file or PostgreSQL URL). "
        "Rows already imported are matched by their source primary key; a later run "
        "brings only what is new or changed. Refused rows and rows deleted at the source "
        "go to a JSON Lines report. Exit code 0 when every batch was written (even with "
        "refused rows), 1 when the import could not run or stopped part-way. Where a source "
        "names a model but not its provider, the provider is inferred from the model name "
        "(rule in ingest/importers/converters.py: gpt-/o1/o3/o4 → openai, claude → anthropic, "
        "gemini → google, llama/gemma/mixtral/deepseek/qwen → groq, mistral → mistral, "
        "command → cohere, 'provider/model' → provider, else unknown)."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(MAPPINGS), help="the application's kind")
        parser.add_argument(
            "url", help="sqlite:///path/app.db, a file path, or postgres://user@host:port/db"
        )
        parser.add_argument("--source-name", help='the Source; default "KIND:<db file or name>"')
        parser.add_argument("--batch-size", type=int, default=1000, help="rows per transaction")
        parser.add_argument(
            "--rejects",
            help="the report file; default var/import-rejects/KIND-<UTC time>.jsonl",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="read, check and write everything in one transaction, then roll it back",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="ignore the sync cursor: re-read every row and update what changed "
            "(catches changes to tables that have no updated_at column)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, kind, url, **options):
        mapping = MAPPINGS[kind]
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            db = open_source(url)
        except SourceError as error:
            raise CommandError(str(error)) from None
        report = Report(options["rejects"] or default_report_path(kind))
        importer, failure = None, None
        try:
            try:
                notes = check_schema(mapping, db)
            except SchemaMismatch as error:
                raise CommandError(str(error)) from None
            # The source is what it says; now the site's own database, before
            # anything is written to it.
            self.check_migrated()
            for outcome, table, column, reason in notes:
                report.note(outcome, table, column, reason)
            dry_run = options["dry_run"]
            if connection.vendor == "postgresql":
                # Don't wait for the WAL flush at each batch's commit. A crash
                # may lose the last batches, but never half of one: the sync
                # cursor commits with its batch, so a rerun brings them again.
                with connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit TO OFF")
            with transaction.atomic() if dry_run else nullcontext():
                source = self.source(kind, options["source_name"] or f"{kind}:{db.name}", url)
                importer = Importer(
                    mapping,
                    db,
                    source,
                    report,
                    batch_size=options["batch_size"],
                    full=options["full"],
                    progress=not options["no_progress"],
                )
                try:
                    importer.run()
                    source.last_synced_at = timezone.now()
                    source.save(update_fields=["last_synced_at"])
                except Exception as error:  # reported below, after the counts
                    failure = error
                if dry_run:
                    transaction.set_rollback(True)
        finally:
            db.close()
            report.close()
        self.summarise(importer, report, source, dry_run, notes)
        if failure is not None:
            table = importer.stats[-1].table if importer.stats else "?"
            reason = scrubbed(f"{failure.__class__.__name__}: {failure}", url)
            raise CommandError(
                f"import stopped in table {table}: {reason}. "
                "Batches written before it stay; running the command again continues."
            ) from failure

    def check_migrated(self):
        """Refuse, in one line, a target database this code's migrations have
        not all run on (a fresh file, another DATABASE_URL, an upgrade whose
        ``migrate`` was not run), before anything is read or written."""
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            apps = ", ".join(sorted({migration.app_label for migration, _ in plan}))
            raise CommandError(
                f"this site's database lacks {len(plan)} migration(s) of {apps}: "
                "run `manage.py migrate` first"
            )

    def source(self, kind, name, url):
        source = Source.objects.filter(name=name).first()
        if source is None:
            return Source.objects.create(
                name=name, kind=kind, description=f"Imported from {safe_url(url)}"
            )
        if source.kind != kind:
            raise CommandError(
                f"source {name!r} is a {source.kind} source, not {kind}: "
                "choose another --source-name"
            )
        return source

    def summarise(self, importer, report, source, dry_run, notes):
        stats = importer.stats
        title = f"Source {source.name!r}" + (" (dry run: nothing was kept)" if dry_run else "")
        self.stdout.write(title)
        self.stdout.write(summary_table(stats))
        for outcome in (ABSENT, IGNORED):
            names = [f"{t}.{c}" if c else t for o, t, c, _ in notes if o == outcome]
            if names:
                self.stdout.write(f"{outcome}: {', '.join(names)}")
        if report.tally:
            self.stdout.write(reasons_table(report.tally))
        refused = sum(s.refused for s in stats)
        dropped = sum(s.dropped for s in stats)
        deleted = [s for s in stats if s.deleted_at_source]
        for s in deleted:
            self.stdout.write(
                f"{s.table}: {s.deleted_at_source} rows deleted at the source, kept here "
                f"(sample in {report.path})"
            )
        if refused or dropped:
            self.stderr.write(
                self.style.WARNING(
                    f"{refused} rows refused and {dropped} values dropped, listed with their "
                    f"reasons in {report.path} (they alone do not fail the import: exit code 0)."
                )
            )
        elif not deleted:
            self.stdout.write(self.style.SUCCESS("No row refused."))
