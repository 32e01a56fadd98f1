"""Demo data for an empty database: ``manage.py seed_demo``.

- ``catalog``: static data (models and prices, names, datasets, agent
  templates, sample texts);
- ``builder.build_demo``: runs the phases in one transaction;
- ``context``: what the generators share (seeded RNG, clock, ids, writer);
- one generator module per source application (``auto_analyst``,
  ``deep_analysis``, ``ds_ml_agent``, ``text_to_sql``, ``ai_chat_v2``) and
  ``reference`` for sources, prices, organisations, templates and budgets.

All randomness comes from one ``random.Random(seed)`` and every time is
relative to an anchor (the start of the current UTC day), so two runs on the
same day give the same data (auto ids aside).
"""
