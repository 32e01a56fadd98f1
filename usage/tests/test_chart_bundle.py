"""Chart pages load plotly.js's basic bundle once; report figures the full one."""

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from core.tests import factories as f

pytestmark = pytest.mark.django_db


def test_the_basic_bundle_is_a_quarter_of_the_full_one():
    basic = Path(finders.find("vendor/plotly-basic.min.js"))
    full = Path(finders.find("vendor/plotly.min.js"))
    assert basic.stat().st_size < 1.5e6 < full.stat().st_size
    # the same plotly.js release as the Python package's full bundle
    version = full.read_text()[:200].split(" v", 1)[1].split()[0]
    assert f"v{version}" in basic.read_text()[:200]


@pytest.mark.parametrize("url", ["/admin/dashboards/", "/admin/quality/code/"])
def test_chart_pages_load_only_the_basic_bundle(client, url):
    client.force_login(f.UserFactory(groups=["Managers"]))
    page = client.get(url).content.decode()
    assert page.count("vendor/plotly-basic.min.js") == 1
    assert "vendor/plotly.min.js" not in page
