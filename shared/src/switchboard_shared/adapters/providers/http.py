"""What every HTTP provider adapter shares: one client per provider with its timeout and
Bearer key, errors classified as transient or permanent, latency and error metrics, and
reading a callback body as a JSON object."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from switchboard_shared.http.client_shards import ClientShards
from switchboard_shared.observability.metrics import PROVIDER_ERRORS, PROVIDER_REQUEST_SECONDS
from switchboard_shared.ports import (
    LookupUnsupported,
    MalformedCallback,
    ProviderAmbiguousError,
    ProviderCallState,
    ProviderPermanentError,
    ProviderTransientError,
    RangeNotSatisfiable,
    RecordingNotFound,
    RecordingStream,
)
from switchboard_shared.runtime.settings import ProviderSettings

# Keep provider error text in our logs short: it may echo request data.
_MAX_ERROR_TEXT = 300


# Failures after the request went out: connect, pool and write failures mean the
# provider never had a whole request; these mean it had one and its answer never came.
_ANSWER_LOST = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


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
        # The dialer bounds in-flight creates at max_in_flight; polls and cancels are few.
        # A transport given (tests) is one pool already: one client over it.
        self._clients = ClientShards(
            settings.max_in_flight if transport is None else 1,
            base_url=settings.base_url,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_seconds),
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

        Raises ProviderTransientError on connect errors, timeouts, 429 and 5xx (its
        subclass ProviderAmbiguousError when the request was sent and the answer lost);
        ProviderPermanentError on any other non-2xx answer and on a 2xx body that is not
        JSON (the provider may have acted on the request: retrying could place the call
        twice). Every outcome is recorded in the provider metrics.
        """
        started = time.perf_counter()
        outcome = "transient"  # what a connect error or a timeout is
        try:
            with self._clients.client() as client:
                response = await client.request(
                    method, path, json=json_body, params=params, headers=headers
                )
            if response.is_success:
                outcome = "ok"
            elif not is_transient_status(response.status_code):
                outcome = "permanent"
        except _ANSWER_LOST as exc:
            # Sent whole, answer lost: the provider may have acted on it.
            raise self._fail(operation, ProviderAmbiguousError, f"no answer: {exc!r}") from exc
        except httpx.TimeoutException as exc:
            raise self._fail(operation, ProviderTransientError, f"timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise self._fail(operation, ProviderTransientError, f"unreachable: {exc!r}") from exc
        finally:
            PROVIDER_REQUEST_SECONDS.labels(self.provider, operation, outcome).observe(
                time.perf_counter() - started
            )
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise self.permanent_error(operation, "answered 2xx with a non-JSON body") from exc
        kind = ProviderPermanentError if outcome == "permanent" else ProviderTransientError
        text = response.text[:_MAX_ERROR_TEXT]
        raise self._fail(operation, kind, f"answered {response.status_code}: {text}")

    async def status_of(self, path: str) -> int:
        """The status code of one GET of `path`, not counted in the provider metrics (it
        is an operator's check, not traffic). Raises ProviderTransientError when the
        provider cannot be reached or does not answer in time."""
        try:
            with self._clients.client() as client:
                response = await client.get(path)
        except httpx.TimeoutException as exc:
            raise ProviderTransientError(f"{self.provider} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise ProviderTransientError(f"{self.provider} unreachable: {exc!r}") from exc
        return response.status_code

    async def open_audio(self, url: str, byte_range: str | None) -> RecordingStream:
        """Stream the audio at `url` (relative to the base URL, or absolute), passing
        `byte_range` on as `Range`.

        The provider's key goes only to the provider's own host: a recording on another
        host (a storage bucket, a CDN) is fetched without it, so the key never leaves
        for a third party. Raises RecordingNotFound (404), RangeNotSatisfiable (416),
        ProviderTransientError (unreachable, timeout, 429, 5xx), ProviderPermanentError.
        """
        operation = "fetch_recording"
        request = self._clients.any.build_request(
            "GET",
            url,
            # Identity encoding: the bytes are relayed as they come, Content-Length too.
            headers={
                "Accept": "audio/*",
                "Accept-Encoding": "identity",
                **({"Range": byte_range} if byte_range else {}),
            },
        )
        if not self._same_host(request.url):
            request.headers.pop("Authorization", None)
        started = time.perf_counter()
        outcome = "transient"  # what a connect error or a timeout is
        try:
            with self._clients.client() as client:
                response = await client.send(request, stream=True)
            if response.status_code in (200, 206, 404):
                outcome = "ok"  # no recording (yet) is an answer, not a failure
            elif not is_transient_status(response.status_code):
                outcome = "permanent"
        except httpx.TimeoutException as exc:
            raise self._fail(operation, ProviderTransientError, f"timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise self._fail(operation, ProviderTransientError, f"unreachable: {exc!r}") from exc
        finally:
            PROVIDER_REQUEST_SECONDS.labels(self.provider, operation, outcome).observe(
                time.perf_counter() - started
            )
        if response.status_code in (200, 206):
            length = response.headers.get("Content-Length")
            return RecordingStream(
                status_code=response.status_code,
                content_type=response.headers.get("Content-Type", "application/octet-stream"),
                content_length=int(length) if length and length.isdigit() else None,
                content_range=response.headers.get("Content-Range")
                if response.status_code == 206
                else None,
                chunks=response.aiter_raw(),
                close=response.aclose,
            )
        await response.aclose()
        if response.status_code == 404:
            raise RecordingNotFound(f"{self.provider} has no recording at this address")
        if response.status_code == 416:
            raise RangeNotSatisfiable(f"{self.provider}: range {byte_range!r} not satisfiable")
        kind = (
            ProviderTransientError
            if is_transient_status(response.status_code)
            else ProviderPermanentError
        )
        raise self._fail(operation, kind, f"answered {response.status_code}")

    def _same_host(self, url: httpx.URL) -> bool:
        base = self._clients.any.base_url
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def _fail(
        self,
        operation: str,
        kind: type[ProviderTransientError] | type[ProviderPermanentError],
        detail: str,
    ) -> Exception:
        label = "permanent" if kind is ProviderPermanentError else "transient"
        PROVIDER_ERRORS.labels(self.provider, operation, label).inc()
        return kind(f"{self.provider} {operation} {detail}")

    def permanent_error(self, operation: str, detail: str) -> ProviderPermanentError:
        """A permanent failure the adapter found itself (an unreadable answer, a missing
        setting), counted like the others."""
        PROVIDER_ERRORS.labels(self.provider, operation, "permanent").inc()
        return ProviderPermanentError(f"{self.provider} {operation}: {detail}")

    async def close(self) -> None:
        await self._clients.aclose()


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
    # Whether a route may leave out provider_agent_id: the adapter then sends the agent
    # itself (prompt, voice, initial message). `agents load` checks it.
    inline_agent: ClassVar[bool] = False

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

    # Each adapter's get-call path for an id no provider issues (`check_access`).
    access_probe_path: str

    async def check_access(self) -> None:
        """Reads a call that does not exist: a 404 (or any 2xx) says the provider is
        reachable and took our credentials, and nothing was placed. Raises
        ProviderPermanentError when it refuses them (401, 403) or answers another 4xx,
        ProviderTransientError when it is unreachable or answers 429/5xx."""
        status = await self._http.status_of(self.access_probe_path)
        if 200 <= status < 300 or status == 404:
            return
        if status in (401, 403):
            raise ProviderPermanentError(f"{self.name} refused our credentials (HTTP {status})")
        kind = ProviderTransientError if is_transient_status(status) else ProviderPermanentError
        raise kind(f"{self.name} answered HTTP {status}")

    async def fetch_recording(
        self, provider_call_id: str, byte_range: str | None = None
    ) -> RecordingStream:
        """The recording at the address the provider's call object names (read afresh:
        some providers' addresses expire); RecordingNotFound while it names none."""
        url = await self.recording_url(provider_call_id)
        if not url:
            raise RecordingNotFound(f"{self.name} reports no recording for the call")
        return await self._http.open_audio(url, byte_range)

    async def recording_url(self, provider_call_id: str) -> str | None:
        """Where the provider keeps the call's recording, None when it has none (the
        default: an adapter whose provider records calls says where)."""
        return None

    async def find_call(self, call_id: str) -> ProviderCallState | None:
        """Find a call by our reference. By default the provider cannot (Vocode and
        Voxpria document no such lookup): LookupUnsupported, without a request."""
        raise LookupUnsupported(f"{self.name} cannot look a call up by our reference")

    async def close(self) -> None:
        await self._http.close()
