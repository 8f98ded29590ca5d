"""Headless Chromium for browser tests: Debian's `/usr/bin/chromium` driven by
Playwright (no browser download), with every request off loopback blocked and recorded,
so a test can assert the page needed nothing from the internet.

`make test` installs chromium when it is missing (the Makefile's `test-tools`).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Page, Route, WebSocketRoute, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
# Headless, and no traffic of Chromium's own (updates, sync, safe browsing) that the
# off-loopback record would have to tell apart from the page's.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A fake microphone and camera that the page may use without a permission prompt.
FAKE_MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def is_loopback_url(url: str) -> bool:
    """Whether `url` stays on this machine: loopback hosts, or no network at all
    (data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https", "ws", "wss"}:
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class BrowserPage:
    page: Page
    # Every request the page tried off loopback, in order; each was aborted.
    blocked: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def browser_page(*, fake_media: bool = False) -> AsyncIterator[BrowserPage]:
    """A fresh page in a fresh headless Chromium; requests off loopback are aborted and
    listed in `blocked`."""
    if not CHROMIUM_INSTALLED:
        raise RuntimeError(f"{CHROMIUM} is missing: `make test-tools` installs it")
    args = LAUNCH_ARGS + (FAKE_MEDIA_ARGS if fake_media else [])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            context = await browser.new_context()
            blocked: list[str] = []

            async def guard(route: Route) -> None:
                url = route.request.url
                if is_loopback_url(url):
                    await route.continue_()
                else:
                    blocked.append(url)
                    await route.abort("blockedbyclient")

            async def refuse(socket: WebSocketRoute) -> None:
                blocked.append(socket.url)
                await socket.close(code=1008, reason="off loopback")

            # Routed before the page exists, so its first request is already checked;
            # WebSockets bypass `route` and are checked by their own.
            await context.route("**/*", guard)
            await context.route_web_socket(lambda url: not is_loopback_url(url), refuse)
            yield BrowserPage(await context.new_page(), blocked)
        finally:
            await browser.close()
