"""The SSRF guard refuses every internal target, after resolution."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from switchboard_shared.webhooks.url_guard import (
    CheckedTarget,
    UnresolvableHost,
    UnsafeUrl,
    check_url,
    refusal_reason,
    unwrap,
)

REFUSED = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3/",
    "https://[::1]/",
    "https://10.0.0.1/",
    "https://10.255.255.255/",
    "https://172.16.0.1/",
    "https://172.31.255.254/",
    "https://192.168.1.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.1.1/",
    "https://[fd00:ec2::254]/",
    "https://[fc00::1]/",
    "https://[fe80::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::127.0.0.1]/",
    "https://[64:ff9b::7f00:1]/",
    "https://0.0.0.0/",
    "https://[::]/",
    "https://224.0.0.1/",
    "https://[ff02::1]/",
    "https://100.64.0.1/",
    "https://100.100.100.200/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://192.0.2.1/",
    "https://localhost/",
    "https://metadata.google.internal/computeMetadata/v1/",
]

# Refused even when an operator allows private networks.
ALWAYS_REFUSED = [
    "https://169.254.169.254/",
    "https://169.254.170.2/",
    "https://[fd00:ec2::254]/",
    "https://[::ffff:169.254.169.254]/",
    "https://100.100.100.200/",
    "https://168.63.129.16/",
    "https://metadata.google.internal/",
    "https://0.0.0.0/",
    "https://224.0.0.1/",
    "https://[fe80::1]/",
    "https://169.254.1.1/",
    "https://240.0.0.1/",
]

ALLOWED_WHEN_PRIVATE = [
    "https://127.0.0.1:8443/hook",
    "https://[::1]/",
    "https://10.1.2.3/",
    "https://172.20.0.5/",
    "https://192.168.0.10/",
    "https://100.64.0.1/",
    "https://[fd12:3456::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://localhost/",
]


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror:
        return False
    return True


@pytest.mark.parametrize("url", REFUSED)
async def test_internal_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url, allow_http=False, allow_private=False)


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
async def test_metadata_and_special_addresses_are_refused_even_with_private_allowed(
    url: str,
) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url, allow_http=True, allow_private=True)


@pytest.mark.parametrize("url", ALLOWED_WHEN_PRIVATE)
async def test_loopback_and_private_targets_pass_when_allowed(url: str) -> None:
    target = await check_url(url, allow_http=False, allow_private=True)
    assert target.url == url
    assert not ipaddress.ip_address(target.address).is_global


async def test_metadata_reason_is_named() -> None:
    with pytest.raises(UnsafeUrl, match="metadata"):
        await check_url("https://169.254.169.254/", allow_http=False, allow_private=True)


@pytest.mark.parametrize("literal", ["2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "127.1"])
async def test_numeric_ipv4_tricks_are_judged_by_the_address_they_mean(literal: str) -> None:
    if not _resolves(literal):
        pytest.skip(f"this resolver does not read {literal}")
    with pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1"):
        await check_url(f"https://{literal}/", allow_http=False, allow_private=False)
    target = await check_url(f"https://{literal}/", allow_http=False, allow_private=True)
    assert target.address == "127.0.0.1"


async def test_http_needs_allow_http() -> None:
    with pytest.raises(UnsafeUrl, match="https"):
        await check_url("http://127.0.0.1/", allow_http=False, allow_private=True)
    target = await check_url("http://127.0.0.1:9000/x", allow_http=True, allow_private=True)
    assert target == CheckedTarget(
        url="http://127.0.0.1:9000/x",
        scheme="http",
        host="127.0.0.1",
        port=9000,
        address="127.0.0.1",
    )
    assert target.host_header == "127.0.0.1:9000"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "https:///nohost", "x"]
)
async def test_other_schemes_and_hostless_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url, allow_http=True, allow_private=True)


async def test_an_unresolvable_host_is_reported_as_such() -> None:
    with pytest.raises(UnresolvableHost):
        await check_url("https://no-such-host.invalid/", allow_http=False, allow_private=False)


async def test_public_addresses_pass_and_are_connected_to() -> None:
    target = await check_url("https://8.8.8.8/hook", allow_http=False, allow_private=False)
    assert target.address == "8.8.8.8"
    assert target.host_header == "8.8.8.8"
    v6 = await check_url(
        "https://[2001:4860:4860::8888]:8443/", allow_http=False, allow_private=False
    )
    assert v6.address == "2001:4860:4860::8888"
    assert v6.host_header == "[2001:4860:4860::8888]:8443"


async def test_mapped_ipv6_connects_over_ipv4() -> None:
    target = await check_url("https://[::ffff:127.0.0.1]/", allow_http=False, allow_private=True)
    assert target.address == "127.0.0.1"


def test_unwrap_reads_embedded_ipv4() -> None:
    ip = ipaddress.ip_address
    assert unwrap(ip("::ffff:169.254.169.254")) == ip("169.254.169.254")
    assert unwrap(ip("::10.0.0.1")) == ip("10.0.0.1")
    assert unwrap(ip("2002:7f00:1::")) == ip("127.0.0.1")
    assert unwrap(ip("64:ff9b::a00:1")) == ip("10.0.0.1")
    assert unwrap(ip("::1")) == ip("::1")
    assert unwrap(ip("2001:db8::1")) == ip("2001:db8::1")


def test_refusal_reasons() -> None:
    ip = ipaddress.ip_address
    assert refusal_reason(ip("1.1.1.1"), allow_private=False) is None
    assert "loopback" in (refusal_reason(ip("127.0.0.1"), allow_private=False) or "")
    assert "private" in (refusal_reason(ip("10.0.0.1"), allow_private=False) or "")
    assert "link-local" in (refusal_reason(ip("169.254.3.3"), allow_private=True) or "")
    assert refusal_reason(ip("10.0.0.1"), allow_private=True) is None
