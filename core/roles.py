"""The three staff roles and the permissions each holds.

Used by the data migration that creates the groups (with historical models)
and by tests, so the rights are written down once.
"""

# Staff: read conversations and everything attached; set the mistake flag.
STAFF = [
    "chats.view_chat",
    "chats.view_message",
    "chats.view_messagefeedback",
    "chats.view_codeexecution",
    "chats.view_uploadedfile",
    "chats.flag_mistake",
    # review queues (#19): work the items; see the queues and the taxonomy
    "chats.review_items",
    "chats.view_reviewqueue",
    "chats.view_mistakecategory",
    "reports.view_deepanalysisreport",
    "reports.view_analysisresult",
]

# Managers: Staff's rights plus usage dashboards, exports and budgets.
MANAGERS = STAFF + [
    # review results: agreement, progress, quality per model, exports (#19)
    "chats.view_review_results",
    "chats.view_reviewitem",
    "chats.view_review",
    "usage.view_dashboards",
    "usage.export_usage",
    "usage.view_modelusage",
    "usage.view_dailyusage",
    "usage.view_dailylatency",
    "usage.view_dailymodelusage",
    "usage.view_dailymodellatency",
    "usage.view_userusage",
    "usage.view_dailytotal",
    "usage.view_dailytotallatency",
    "usage.view_queryanalytics",
    "usage.view_performancemetric",
    "usage.view_modelprice",
    "usage.view_budget",
    "usage.add_budget",
    "usage.change_budget",
    "usage.delete_budget",
    "core.view_organization",
]

# Admins: every permission of this project's apps and of staff accounts.
ADMIN_APPS = ["core", "chats", "usage", "reports", "auth"]

GROUPS = {"Staff": STAFF, "Managers": MANAGERS}


def sync_groups(apps):
    """Make the groups hold exactly the permissions above.

    Called from data migrations with historical models. A migration that adds
    a permission named here calls it again; permissions not created yet (on a
    fresh database, when an early migration runs) are skipped, so the final
    state always matches this module.
    """
    from django.contrib.auth.management import create_permissions
    from django.db.models import Q

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    for name, dotted in GROUPS.items():
        wanted = Q(pk__in=[])
        for item in dotted:
            app_label, codename = item.split(".")
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(Permission.objects.filter(wanted))

    admins, _ = Group.objects.get_or_create(name="Admins")
    admins.permissions.set(Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))
