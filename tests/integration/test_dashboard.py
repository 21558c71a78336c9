"""The dashboard in a real headless browser (Debian's chromium driven by Playwright).

The page loads, draws its charts, and its numbers change after jobs run. A screenshot is kept in
tests/artifacts/dashboard.png.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.support import ROOT, Service

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
UPDATE_WAIT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium; Playwright never downloads a browser of its own."""
    if not CHROMIUM.exists():
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True)
    return CHROMIUM


@pytest.fixture
def page(chromium: Path) -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1100})
        finally:
            browser.close()


def number(page: Page, element_id: str) -> int:
    return int(page.inner_text(f"#{element_id}"))


def wait_number(page: Page, element_id: str, expected: int) -> None:
    page.wait_for_function(
        "([id, n]) => document.getElementById(id).textContent === String(n)",
        arg=[element_id, expected], timeout=UPDATE_WAIT_MS)


def test_dashboard_follows_the_jobs(page: Page, service: Service, client: httpx.Client) -> None:
    page.goto(f"{service.base_url}/dashboard")
    page.wait_for_function("document.getElementById('updated').textContent.startsWith('updated')",
                           timeout=UPDATE_WAIT_MS)
    assert page.inner_text("#status") == "ready"
    assert page.locator("#key-form").is_hidden()  # no API keys configured
    assert page.locator("#workers tbody tr").count() >= 1
    assert page.locator("#workers tbody tr").first.locator("td").count() == 8  # a worker, not "none"
    before = number(page, "jobs-total")

    codes = ["print(1)", "print(2)", "raise ValueError('x')", "print('x' * 10)"]
    outcomes = [client.post("/v1/run", json={"code": code}).json()["outcome"] for code in codes]
    assert outcomes == ["ok", "ok", "error", "ok"]

    wait_number(page, "jobs-total", before + len(codes))
    assert number(page, "last-minute") >= len(codes)
    assert number(page, "last-hour") >= len(codes)
    assert page.inner_text("#outcome-error").startswith("error ")
    assert page.locator("#chart-minute rect").count() >= 1
    assert page.locator("#chart-hour rect").count() >= 1
    assert page.inner_text("#latency-samples").startswith("last ")
    assert "ms" in page.inner_text("#latency tbody")
    assert page.inner_text("#queue-depth") == "0 / 0"  # interactive / bulk
    assert page.inner_text("#cancelled").isdigit()
    tenant = page.locator("#tenant-anonymous td")  # no keys: everyone is the anonymous admin
    assert tenant.first.inner_text() == "anonymous (admin)"
    assert int(tenant.nth(4).inner_text()) >= len(codes)  # answered in the last minute

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_dashboard_assets_are_served_without_external_links(client: httpx.Client) -> None:
    html = client.get("/dashboard")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    for asset, kind in (("dashboard.js", "javascript"), ("dashboard.css", "css")):
        response = client.get(f"/dashboard/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in response.text
    assert "https://" not in html.text
    assert client.get("/dashboard/..%2Fops.py").status_code == 404
