"""The dashboard tests' fixtures (usage.tests.conftest): a fixed "today",
staff accounts, the zone days are cut in, the awkward ledger."""

from usage.tests.conftest import (  # noqa: F401 (fixtures)
    awkward,
    fixed_today,
    manager,
    manager_without_export,
    staff,
    time_zone,
)
