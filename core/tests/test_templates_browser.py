"""An Admin edits an agent template's prompt in a real browser (Debian's
Chromium through Playwright), sees the diff on the versions page, reverts,
and the prompt is back. A screenshot of the versions page is saved as
test-artifacts/template-history.png.
"""

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission

from core import template_history
from core.models import AgentTemplate, AuditLog
from core.roles import ADMIN_APPS
from core.tests import factories as f

# The live server runs in another thread: the data must be committed. The
# serialized rollback gives back the groups made by migration after the flush.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "tpl-history-pass-4711"
OLD_PROMPT = (
    "You are the planner of Auto-Analyst.\n"
    "You are given a dataset loaded as `df`: {dataset}\n"
    "Break the user's goal into steps: {goal}\n"
    "Name the agent that runs each step."
)
OLD_LINE = "Break the user's goal into steps: {goal}"
NEW_LINE = "Break the user's goal into at most <5> steps: {goal}"


@pytest.fixture
def admin_account():
    """A member of the Admins group. The group is made here if a transactional
    test run before this one (without serialized_rollback) flushed it away;
    its permissions are the ones core.roles gives it."""
    admins, _ = Group.objects.get_or_create(name="Admins")
    if not admins.permissions.exists():
        admins.permissions.set(Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))
    account = f.UserFactory(username="ada", password=make_password(PASSWORD))
    account.groups.add(admins)
    return account


@pytest.fixture
def template():
    return f.AgentTemplateFactory(
        template_name="planner_agent",
        display_name="Planner",
        prompt_template=OLD_PROMPT,
        variant_type=AgentTemplate.VariantType.PLANNER,
    )


def test_admin_edits_a_prompt_sees_the_diff_and_reverts(
    live_server, page, login, screenshot, admin_account, template
):
    login(page, "ada", PASSWORD)
    assert page.url == f"{live_server.url}/admin/"

    # Edit the prompt in the admin's change form.
    page.goto(f"{live_server.url}/admin/core/agenttemplate/{template.pk}/change/")
    assert page.locator("#id_prompt_template").input_value() == OLD_PROMPT
    page.fill("#id_prompt_template", OLD_PROMPT.replace(OLD_LINE, NEW_LINE))
    page.click("input[name=_continue]")
    page.wait_for_load_state()
    assert page.locator(".messagelist .success").count() == 1
    template.refresh_from_db()
    assert NEW_LINE in template.prompt_template
    # The preview highlights the placeholders of the saved prompt.
    assert page.locator(".template-preview mark.placeholder").all_inner_texts() == [
        "{dataset}",
        "{goal}",
    ]

    # The versions page: the stored state, then the edit, and their diff.
    page.click("#versions-link")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Versions of Planner"
    assert page.locator("#versions tbody tr").count() == 2
    assert page.locator("#diff-title").inner_text() == "Changes from version 1 to version 2"
    field = page.locator(".diff-field[data-field=prompt_template]")
    assert field.locator("tr.diff-del .diff-text").all_inner_texts() == [OLD_LINE]
    assert field.locator("tr.diff-add .diff-text").all_inner_texts() == [NEW_LINE]
    # Unchanged lines around the edit give it context.
    assert (
        "Name the agent that runs each step."
        in field.locator("tr.diff-ctx .diff-text").all_inner_texts()
    )
    path = screenshot(page, "template-history")
    assert path.stat().st_size > 20_000

    # Revert to version 1: a confirmation that shows what will change, then back.
    page.click("#version-1 .revert-link")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Revert Planner to version 1?"
    assert page.locator("#diff tr.diff-add .diff-text").all_inner_texts() == [OLD_LINE]
    page.click("#confirm-revert")
    page.wait_for_load_state()

    assert page.url.endswith(f"/admin/core/agenttemplate/{template.pk}/change/")
    assert "Reverted “Planner” to version 1; saved as version 3." in (
        page.locator(".messagelist").inner_text()
    )
    assert page.locator("#id_prompt_template").input_value() == OLD_PROMPT
    template.refresh_from_db()
    assert template.prompt_template == OLD_PROMPT
    assert [v.action for v in template_history.versions_of(template)] == [
        "reverted",
        "changed",
        "baseline",
    ]
    assert AuditLog.objects.filter(action="template_revert", actor=admin_account).count() == 1
