"""Static files storage for production: whitenoise's hashed, compressed
names when collectstatic has run, plain names (and a warning) when not.

``CompressedManifestStaticFilesStorage`` answers every ``{% static %}`` with
ValueError ("Missing staticfiles manifest entry") until collectstatic has
written STATIC_ROOT/staticfiles.json, so a fresh clone started without it
answered 500 on every page. This storage checks for the manifest once per
process: present, it behaves exactly as whitenoise's; absent, it logs one
warning naming the command to run and hands out the plain names, which
whitenoise then serves from the app folders (settings sets
``WHITENOISE_USE_FINDERS`` when the manifest is missing). collectstatic
itself is unchanged and writes the manifest.
"""

import logging

from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger("analyst_admin.static")


class ManifestOrPlainStorage(CompressedManifestStaticFilesStorage):
    _warned = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.manifest_missing = not self.exists(self.manifest_name)

    def stored_name(self, name):
        if self.manifest_missing and not self.hashed_files:
            if not ManifestOrPlainStorage._warned:
                ManifestOrPlainStorage._warned = True
                logger.warning(
                    "%s has no %s: serving static files unhashed from the app folders; "
                    "run `manage.py collectstatic --noinput` and restart",
                    self.location,
                    self.manifest_name,
                )
            return name
        return super().stored_name(name)
