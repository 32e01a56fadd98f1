"""manage.py export_templates: write agent and query templates as JSON or YAML.

The file moves a template set to another deployment (``import_templates``).
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core import templates_io
from core.models import AgentTemplate, QueryTemplate

KINDS = {"agent": "agent_templates", "query": "query_templates"}


class Command(BaseCommand):
    help = (
        "Export agent templates and query templates (the fields Admins edit, no ids or "
        "usage) as JSON or YAML, to a file or to standard output."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "-o", "--output", help="file to write; standard output when omitted or '-'"
        )
        parser.add_argument(
            "--format",
            choices=templates_io.FORMATS,
            help="default: from the output file's extension, else json",
        )
        parser.add_argument(
            "--only", choices=sorted(KINDS), help="export one kind of template only"
        )
        parser.add_argument(
            "--active-only", action="store_true", help="agent templates that are active only"
        )

    def handle(self, *args, output=None, format=None, only=None, active_only=False, **options):
        to_file = output not in (None, "-")
        yaml_name = to_file and output.lower().endswith((".yaml", ".yml"))
        fmt = format or ("yaml" if yaml_name else "json")
        agents = AgentTemplate.objects.all()
        if active_only:
            agents = agents.filter(is_active=True)
        querysets = {"agent_templates": agents, "query_templates": QueryTemplate.objects.all()}
        if only:
            querysets = {KINDS[only]: querysets[KINDS[only]]}
        data = templates_io.export_data(**querysets)
        text = templates_io.dumps(data, fmt)
        counts = ", ".join(f"{len(data[key])} {key.replace('_', ' ')}" for key in querysets)
        if not to_file:
            self.stdout.write(text, ending="")
            self.stderr.write(f"Exported {counts}.")
            return
        path = Path(output)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot write {path}: {error}") from None
        self.stdout.write(self.style.SUCCESS(f"Exported {counts} to {path} ({fmt})."))
