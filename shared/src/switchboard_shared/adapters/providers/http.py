"""What every HTTP provider adapter shares: one client per provider with its timeout and
Bearer key, errors classified as transient or permanent, latency and error metrics, and
reading a callback body as a JSON object."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from switchboard_shared.metrics import PROVIDER_ERRORS, PROVIDER_REQUEST_SECONDS
from switchboard_shared.ports import (
    LookupUnsupported,
    MalformedCallback,
    ProviderCallState,
    ProviderPermanentError,
    ProviderTransientError,
)
from switchboard_shared.settings import ProviderSettings

# Keep provider error text in our logs short: it may echo request data.
_MAX_ERROR_TEXT = 300


def is_transient_status(status_code: int) -> bool:
    """429 and 5xx are worth retrying; any other 4xx is not."""
    return status_code == 429 or status_code >= 500


class ProviderHttp:
    """An httpx client bound to one provider's base URL, key and timeout."""

    def __init__(
        self,
        provider: str,
        settings: ProviderSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.base_url:
            raise ValueError(f"provider {provider!r} has no base_url")
        self.provider = provider
        headers = {"Accept": "application/json", "User-Agent": "switchboard"}
        if key := settings.api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {key}"
        # The dialer bounds in-flight creates at max_in_flight; leave room for polls
        # and cancels on top of that.
        limits = httpx.Limits(
            max_connections=settings.max_in_flight * 2,
            max_keepalive_connections=settings.max_in_flight,
        )
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_seconds),
            limits=limits,
            transport=transport,
        )

    async def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body (None when empty).

        Raises ProviderTransientError on connect errors, timeouts, 429 and 5xx;
        ProviderPermanentError on any other non-2xx answer and on a 2xx body that is not
        JSON (the provider may have acted on the request: retrying could place the call
        twice). Every outcome is recorded in the provider metrics.
        """
        started = time.perf_counter()
        try:
            response = await self._client.request(
                method, path, json=json_body, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise self._fail(operation, ProviderTransientError, f"timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise self._fail(operation, ProviderTransientError, f"unreachable: {exc!r}") from exc
        finally:
            PROVIDER_REQUEST_SECONDS.labels(self.provider, operation).observe(
                time.perf_counter() - started
            )
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise self.permanent_error(operation, "answered 2xx with a non-JSON body") from exc
        kind = (
            ProviderTransientError
            if is_transient_status(response.status_code)
            else ProviderPermanentError
        )
        text = response.text[:_MAX_ERROR_TEXT]
        raise self._fail(operation, kind, f"answered {response.status_code}: {text}")

    def _fail(
        self,
        operation: str,
        kind: type[ProviderTransientError] | type[ProviderPermanentError],
        detail: str,
    ) -> Exception:
        label = "transient" if kind is ProviderTransientError else "permanent"
        PROVIDER_ERRORS.labels(self.provider, operation, label).inc()
        return kind(f"{self.provider} {operation} {detail}")

    def permanent_error(self, operation: str, detail: str) -> ProviderPermanentError:
        """A permanent failure the adapter found itself (an unreadable answer, a missing
        setting), counted like the others."""
        PROVIDER_ERRORS.labels(self.provider, operation, "permanent").inc()
        return ProviderPermanentError(f"{self.provider} {operation}: {detail}")

    async def close(self) -> None:
        await self._client.aclose()


def json_object(body: bytes) -> dict[str, Any]:
    """A callback body as a JSON object; MalformedCallback otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedCallback("callback body is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedCallback("callback body is not a JSON object")
    return data


def optional_int(value: Any, field: str) -> int | None:
    """A whole number of seconds from a JSON value (int, integral float or digit string)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MalformedCallback(f"{field} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MalformedCallback(f"{field} is not a number") from None
    if number < 0 or number != number:  # negative or NaN
        raise MalformedCallback(f"{field} is out of range")
    return round(number)


def optional_datetime(value: Any, field: str) -> datetime | None:
    """An ISO-8601 timestamp (a trailing `Z` allowed), as an aware UTC datetime."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedCallback(f"{field} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedCallback(f"{field} is not a timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def optional_str(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedCallback(f"{field} is not a string")


def required_str(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedCallback(f"{field} is missing")
    return value


class HttpProvider:
    """What every HTTP provider adapter holds: its client, callback secret, default
    caller id and the callback clock tolerance. Subclasses set `name`."""

    name: str

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        callback_tolerance_seconds: float = 300,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = ProviderHttp(self.name, settings, transport=transport)
        self._secret = settings.callback_secret.get_secret_value()
        self._from_number = settings.from_number
        self._tolerance = callback_tolerance_seconds

    async def find_call(self, call_id: str) -> ProviderCallState | None:
        """Find a call by our reference. By default the provider cannot (Vocode and
        Voxpria document no such lookup): LookupUnsupported, without a request."""
        raise LookupUnsupported(f"{self.name} cannot look a call up by our reference")

    async def close(self) -> None:
        await self._http.close()
