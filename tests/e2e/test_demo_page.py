"""The demo page of `make run`'s all-in-one, driven in headless Chromium with a fake
microphone: Start joins a session, audio flows both ways, the timer moves, the agent's
and the user's turns appear, End ends the session and its signed session.ended arrives.
The page never holds the API key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import standardwebhooks

from switchboard_testing.servers import serving
from tests.support.all_in_one import AllInOne, running_all_in_one
from tests.support.browser import browser_page
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

UI_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    with running_all_in_one(tmp_path_factory.mktemp("demo")) as running:
        yield running


async def test_a_person_talks_to_the_agent_and_ends_the_session(system: AllInOne) -> None:
    receiver = WebhookReceiver()
    headers = {"Authorization": f"Bearer {system.api_key}"}
    async with (
        serving(receiver.app()) as hooks,
        httpx.AsyncClient(base_url=system.url, headers=headers, timeout=10) as api,
        browser_page(fake_media=True) as browser,
    ):
        endpoint = await api.put("/v1/webhooks", json={"url": f"{hooks}/hook"})
        secret = endpoint.json()["secret"]
        page = browser.page
        requests: list[Any] = []
        page.on("request", lambda request: requests.append(request))
        await page.goto(f"{system.url}/demo")
        assert system.api_key not in await page.content()
        await page.click("#start")
        await page.wait_for_selector("#status:text('active')", timeout=UI_TIMEOUT_MS)
        # The agent's greeting: heard (audio bytes in) and shown.
        await page.wait_for_function(
            "Number(document.getElementById('received').textContent) > 16000",
            timeout=UI_TIMEOUT_MS,
        )
        await page.wait_for_selector("#transcript .agent", timeout=UI_TIMEOUT_MS)
        # The fake microphone's audio reaches the agent: a user turn and a reply.
        await page.wait_for_selector("#transcript .user", timeout=UI_TIMEOUT_MS)
        assert int(await page.text_content("#sent") or "0") >= 32000
        await page.wait_for_function(
            "document.getElementById('timer').textContent !== '0m 0s'", timeout=UI_TIMEOUT_MS
        )
        await page.click("#end")
        await page.wait_for_selector("#status:text('ended (manual)')", timeout=UI_TIMEOUT_MS)

        listed = (await api.get("/v1/sessions", params={"limit": 1})).json()["sessions"][0]
        assert (listed["status"], listed["reason"]) == ("ended", "manual")
        assert listed["elapsed"]["total_seconds"] >= 1
        roles = [turn["role"] for turn in listed["transcript"]]
        assert "agent" in roles
        assert "user" in roles

        async def delivered() -> list[Any]:
            return [r for r in receiver.received if r.payload["type"] == "session.ended"]

        (webhook,) = await eventually(delivered, within=20)
        standardwebhooks.Webhook(secret).verify(webhook.body, webhook.headers)
        assert webhook.payload["data"]["session_id"] == listed["session_id"]

    assert browser.blocked == []
    for request in requests:
        assert "authorization" not in {k.lower() for k in request.headers}
        assert system.api_key not in request.url
