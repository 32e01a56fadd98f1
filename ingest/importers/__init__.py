"""Importers of the four analyst applications' databases.

One engine (``engine.py``) and one declarative mapping per kind; the
``import_source`` management command runs them.
"""

from . import ai_chat_v2, auto_analyst, ds_ml_agent, text_to_sql

MAPPINGS = {
    mapping.kind: mapping
    for mapping in (
        auto_analyst.MAPPING,
        ds_ml_agent.MAPPING,
        text_to_sql.MAPPING,
        ai_chat_v2.MAPPING,
    )
}
