"""manage.py import_templates FILE: bring in agent and query templates from an
export (JSON or YAML).

Every item is validated before anything is written; one problem and nothing
is (exit code 1, each problem listed with its item's index and field).
Templates are matched by name, so running it twice changes nothing the
second time. ``--dry-run`` checks and reports without writing.
"""

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core import templates_io


class Command(BaseCommand):
    help = (
        "Import agent templates and query templates from a JSON or YAML export. "
        "Validates every item first and writes all or nothing; matches agent templates "
        "by template_name and query templates by name. Exit code 1 on any problem."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the export to read; '-' for standard input")
        parser.add_argument(
            "--format",
            choices=templates_io.FORMATS,
            help="default: from the file's extension, else guessed from its content",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="validate and report; write nothing"
        )
        parser.add_argument(
            "--actor", help="username of the staff account the audit trail names as actor"
        )

    def handle(self, *args, file, format=None, dry_run=False, actor=None, **options):
        user = None
        if actor:
            user = get_user_model().objects.filter(username=actor).first()
            if user is None:
                raise CommandError(f"no staff account named {actor!r}")
        if file == "-":
            text, origin = sys.stdin.read(), "standard input"
        else:
            path = Path(file)
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as error:
                raise CommandError(f"cannot read {path}: {error}") from None
            origin = path.name
        try:
            data = templates_io.loads(text, format, filename=origin)
        except templates_io.TemplateFileError as error:
            raise CommandError(f"{origin} is {error}") from None

        result = templates_io.import_templates(data, user=user, dry_run=dry_run, origin=origin)
        if not result.ok:
            for problem in result.problems:
                self.stderr.write(f"  {problem}")
            count = len(result.problems)
            raise CommandError(
                f"nothing imported from {origin}: {count} problem{'s' if count != 1 else ''}"
            )
        self.stdout.write(self.style.SUCCESS(f"{origin}: {result.summary()}."))
