from django.apps import AppConfig


class IngestConfig(AppConfig):
    """What brings data in: the importers, the ingest API and the demo data.

    It has no models of its own; it writes the four apps' models and is
    imported by none of them.
    """

    name = "ingest"
    verbose_name = "Ingest: importers, the ingest API and demo data"
