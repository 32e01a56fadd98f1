"""403, 404 and 500 answers: inside the admin's frame, with the reason and a way back."""

import pytest
from django.test import Client

from core.tests import factories as f

pytestmark = pytest.mark.django_db


def _client(groups):
    client = Client()
    client.force_login(f.UserFactory(groups=groups))
    return client


def test_staff_opening_a_dashboard_get_the_reason_inside_the_frame():
    response = _client(["Staff"]).get(
        "/admin/dashboards/", HTTP_REFERER="http://testserver/admin/review/feedback/"
    )
    assert response.status_code == 403
    page = response.content.decode()
    assert 'id="header"' in page and "Analyst Admin" in page  # the admin's frame
    assert "Not allowed" in page
    assert "permission this page needs" in page
    assert "with the role Staff" in page
    assert 'href="http://testserver/admin/review/feedback/"' in page  # back to where they were


def test_back_never_leads_off_site():
    response = _client(["Staff"]).get(
        "/admin/dashboards/", HTTP_REFERER="https://evil.example.com/phish"
    )
    page = response.content.decode()
    assert "evil.example.com" not in page
    assert 'href="/admin/"' in page


def test_a_missing_record_answers_404_inside_the_frame():
    response = _client(["Managers"]).get("/admin/dashboards/users/987654321/")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'id="header"' in page and "Not found" in page
    assert "There is no app user with this id" in page
    assert 'href="/admin/"' in page


def test_an_unknown_address_answers_404_without_the_url_patterns(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Not found" in page and "nothing at this address" in page
    assert "admin/dashboards/" not in page  # Django's debug list of patterns is not shown


def test_the_500_page_needs_no_database_and_offers_a_way_back():
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert "Something went wrong (500)" in page
    assert 'href="/admin/"' in page
