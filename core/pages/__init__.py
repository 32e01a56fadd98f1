"""The page kit: what every custom page of the admin (the cost dashboards,
the analytics pages, the report pages) is made of.

- ``period``: the Period and Scope a page's figures are computed for, the
  Fields that say where a Scope is found from one table, and the QuerySet
  vocabulary (``in_period``, ``scoped``) built on them;
- ``filters``: the filter bar's base (period presets, a bounded custom
  range, the scope), kept in the URL;
- ``tables``: Column and Table (one definition for the HTML and the CSV)
  and the one CSV writer every export uses;
- ``charts``: plotly figure specifications as plain dicts;
- ``figures``: a headline figure with its change against the period before;
- ``views``: the permission decorator of custom pages (``admin_page``), the
  pager and ``render_page`` (render, or export one table computing only it);
- ``memo``: figures a page asks for twice computed once per request.

It imports no other app of this project: every app above core uses it.
"""
