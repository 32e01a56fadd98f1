"""The apps stack one way: core ← chats ← usage ← reports ← analytics (and
ingest on top). No module of an app imports one above it."""

import ast
from pathlib import Path

from django.conf import settings

BELOW = {
    "core": {"core"},
    "chats": {"core", "chats"},
    "usage": {"core", "chats", "usage"},
    "reports": {"core", "chats", "usage", "reports"},
    "analytics": {"core", "chats", "usage", "reports", "analytics"},
}
OURS = {*BELOW, "ingest", "analyst_admin"}


def imports_of(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_import_runs_up_the_stack():
    upward = []
    for app, allowed in BELOW.items():
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
            if "tests" in path.parts:
                continue
            for module in imports_of(path):
                top = module.split(".")[0]
                if top in OURS and top not in allowed:
                    upward.append(f"{path.relative_to(settings.BASE_DIR)} imports {module}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "example.py"
    module.write_text("from analytics import metrics\nimport usage.models\nfrom . import x\n")
    assert list(imports_of(module)) == ["analytics", "usage.models"]
