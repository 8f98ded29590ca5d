"""`switchboard doctor`: checks what a deployment needs before it takes a call, placing
none. Each check gives one line: the settings, the store, the broker, each enabled
provider (reachable, credentials accepted), the callback base URL (webhook-ingest
answers there) and the webhook URL rules in force."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from switchboard_shared.ports import ProviderError
from switchboard_shared.runtime.bootstrap import build_store
from switchboard_shared.runtime.settings import Settings

# Every check is bounded: a dependency slower than this is reported, not waited for.
CHECK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def where(url: str) -> str:
    """`scheme://host[:port]` of `url`: no credentials, no path."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


async def _bounded(step: Awaitable[object]) -> None:
    async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
        await step


def check_settings(settings: Settings) -> Check:
    """Settings parsed (the caller did that); in production, nothing meant for a laptop."""
    problems = []
    if settings.env == "production":
        if settings.dev_api_key:
            problems.append("SWITCHBOARD_DEV_API_KEY is set (a demo key)")
        if "simulator" in settings.provider_settings():
            problems.append("the simulator is enabled (unset SWITCHBOARD_SIMULATOR__BASE_URL)")
        default_secret = Settings.model_fields["session_token_secret"].default
        if settings.session_token_secret == default_secret:
            problems.append("SWITCHBOARD_SESSION_TOKEN_SECRET is the development default")
        if settings.media_edge_url.startswith("ws://"):
            problems.append("SWITCHBOARD_MEDIA_EDGE_URL is ws:// (browsers need wss://)")
    summary = f"env={settings.env}"
    if problems:
        return Check("settings", False, f"{summary}: " + "; ".join(problems))
    return Check("settings", True, f"{summary}, valid")


async def check_store(settings: Settings) -> Check:
    if settings.mongodb_url:
        described = f"MongoDB at {where(settings.mongodb_url)}"
    else:
        described = f"SQLite file {settings.effective_sqlite_path}"
    store = build_store(settings)
    try:
        await _bounded(store.start())
        await _bounded(store.ping())
    except Exception as exc:  # whatever the driver raises is the operator's answer
        return Check("store", False, f"{described}: {reason(exc)}")
    finally:
        await store.close()
    return Check("store", True, f"{described} answers")


async def check_broker(settings: Settings) -> Check:
    if not settings.broker_url:
        return Check(
            "broker", True, "none set: the in-process bus (only `switchboard run all` works so)"
        )
    from switchboard_shared.adapters.bus.rabbitmq import probe_broker

    described = f"RabbitMQ at {where(settings.broker_url)}"
    try:
        await _bounded(probe_broker(settings.broker_url))
    except Exception as exc:
        return Check("broker", False, f"{described}: {reason(exc)}")
    return Check("broker", True, f"{described} answers")


async def check_providers(settings: Settings) -> list[Check]:
    from switchboard_shared.adapters.providers import build_provider

    enabled = settings.provider_settings()
    if not enabled:
        return [Check("providers", False, "none enabled: set SWITCHBOARD_<P>__BASE_URL")]
    checks = []
    for name, provider_settings in enabled.items():
        label = f"provider {name}"
        assert provider_settings.base_url  # enabled means it has one
        described = where(provider_settings.base_url)
        missing = [
            f"SWITCHBOARD_{name.upper()}__{field.upper()}"
            for field in ("api_key", "callback_secret")
            if not getattr(provider_settings, field).get_secret_value()
        ]
        if missing:
            checks.append(Check(label, False, f"{described}: not set: {', '.join(missing)}"))
            continue
        provider = build_provider(name, provider_settings, settings.callback_tolerance_seconds)
        try:
            await _bounded(provider.check_access())
        except (ProviderError, TimeoutError) as exc:
            checks.append(Check(label, False, f"{described}: {reason(exc)}"))
            continue
        finally:
            await provider.close()
        checks.append(Check(label, True, f"{described} reachable, credentials accepted"))
    return checks


async def check_callback_base_url(settings: Settings) -> Check:
    """Providers call back `<base>/v1/webhooks/providers/<provider>`: that route must be
    webhook-ingest's. A GET is not a callback: ingest answers 405 and counts nothing."""
    base = settings.callback_base_url.rstrip("/")
    scheme = urlsplit(base).scheme
    if scheme not in ("http", "https"):
        return Check("callback base URL", False, f"{base}: not an http(s) URL")
    if settings.env == "production" and scheme != "https":
        return Check("callback base URL", False, f"{base}: production needs https")
    probe = f"{base}/v1/webhooks/providers/{next(iter(settings.provider_settings()), 'simulator')}"
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_SECONDS, trust_env=False) as client:
            status = (await client.get(probe)).status_code
    except httpx.HTTPError as exc:
        return Check("callback base URL", False, f"{base}: unreachable from here: {reason(exc)}")
    if status != 405:
        return Check(
            "callback base URL", False, f"{base}: HTTP {status} where webhook-ingest answers 405"
        )
    return Check("callback base URL", True, f"{base}: webhook-ingest answers (from here)")


def check_webhook_url_rules(settings: Settings) -> Check:
    """The SSRF rules customer webhook URLs are held to; loosened ones fail in production."""
    schemes = "http and https" if settings.webhook_allow_http else "https only"
    networks = (
        "private, loopback and link-local addresses allowed"
        if settings.webhook_allow_private_networks
        else "no private, loopback, link-local or metadata addresses"
    )
    detail = f"{schemes}; {networks}"
    loosened = settings.webhook_allow_http or settings.webhook_allow_private_networks
    if settings.env == "production" and loosened:
        return Check("webhook URLs", False, f"{detail}: too loose for production")
    return Check("webhook URLs", True, detail)


async def diagnose(settings: Settings) -> list[Check]:
    """Every check, in order; none stops the others."""
    return [
        check_settings(settings),
        await check_store(settings),
        await check_broker(settings),
        *await check_providers(settings),
        await check_callback_base_url(settings),
        check_webhook_url_rules(settings),
    ]
