"""The interactive docs work on a machine with no internet: in headless Chromium with
every request off loopback blocked, `/docs` renders from the installed package, a key
entered in "Authorize" is sent as a Bearer token, and "Execute" on `POST /v1/calls`
shows the 201 and its `call_id`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.all_in_one import AllInOne, running_all_in_one
from tests.support.browser import browser_page, is_loopback_url

pytestmark = pytest.mark.e2e

UI_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    with running_all_in_one(tmp_path_factory.mktemp("docs")) as running:
        yield running


def test_loopback_urls_are_told_apart_from_the_internet() -> None:
    assert is_loopback_url("http://127.0.0.1:8000/docs")
    assert is_loopback_url("http://localhost/x")
    assert is_loopback_url("data:image/svg+xml;base64,AAAA")
    assert not is_loopback_url("https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css")
    assert not is_loopback_url("wss://example.com/socket")


async def test_swagger_ui_creates_a_call_with_no_internet(system: AllInOne) -> None:
    async with browser_page() as browser:
        page = browser.page
        await page.goto(f"{system.url}/docs")
        await page.wait_for_load_state("networkidle")
        assert browser.blocked == [], "the docs page needs the internet to load"
        await page.locator("button.authorize").first.click(timeout=UI_TIMEOUT_MS)
        modal = page.locator(".modal-ux")
        await modal.locator("input").first.fill(system.api_key)
        await modal.locator("button.authorize").click()
        await modal.locator("button.btn-done").click()

        operation = page.locator(
            ".opblock-post:has(.opblock-summary-path[data-path='/v1/calls'])"
        ).first
        await operation.locator(".opblock-summary").first.click()
        await operation.locator("button.try-out__btn").click()
        body = {"phone": "+996700000000", "agent": "altynai"}
        await operation.locator("textarea.body-param__text").fill(json.dumps(body))
        await operation.locator("button.execute").click()

        # The live response's row (the table's header row says "Code").
        live = operation.locator(".live-responses-table tr.response")
        await live.locator(".response-col_status").wait_for(timeout=UI_TIMEOUT_MS)
        assert (await live.locator(".response-col_status").inner_text()).strip() == "201"
        shown = await live.locator(".response-col_description").inner_text()
        assert '"call_id"' in shown, shown
        assert browser.blocked == [], "trying the API reached off loopback"


def test_the_docs_page_names_no_host_and_needs_no_key(system: AllInOne) -> None:
    page = httpx.get(f"{system.url}/docs", timeout=10)
    assert page.status_code == 200
    assert "https://" not in page.text, page.text
    assert "http://" not in page.text, page.text
    # ReDoc is not served: it loads its logo from a CDN.
    assert httpx.get(f"{system.url}/redoc", timeout=10).status_code == 404
