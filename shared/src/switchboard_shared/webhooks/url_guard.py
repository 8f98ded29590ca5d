"""The SSRF guard for customer webhook URLs.

A customer URL is checked at registration and again before every attempt, after DNS
resolution, and the sender connects to the address that was checked (never resolving the
name a second time), so a DNS answer that changes between the check and the connection
(rebinding) cannot steer a webhook into the operator's network.

Refused: schemes other than https (http only with `allow_http`), URLs without a host,
and any host that resolves to an address that is not globally routable — loopback,
private, link-local, shared (CGNAT), multicast, reserved, unspecified, documentation —
or to a cloud metadata service. `allow_private` (the all-in-one mode, tests) lets
loopback, private and shared addresses through; link-local, multicast, unspecified and
metadata addresses stay refused. IPv4-mapped and -compatible IPv6 addresses are judged
by the IPv4 address they carry; numeric tricks (`2130706433`, `0x7f.1`, `0177.0.0.1`)
are normalized by the resolver and then judged like any address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata endpoints of the major clouds (AWS, GCP, Azure, Alibaba, Oracle,
# AWS ECS task metadata, AWS's resolver): refused even when private networks are allowed.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "169.254.169.123",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
        "192.0.0.192",
        "168.63.129.16",
    )
)
METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeUrl(ValueError):
    """The URL must not be called: the message says why, in words a customer can act on."""


class UnresolvableHost(UnsafeUrl):
    """The host name does not resolve (now): not an attack, maybe a DNS hiccup."""


@dataclass(frozen=True)
class CheckedTarget:
    """A URL that passed the guard and the address to connect to."""

    url: str
    scheme: str
    host: str  # as written in the URL (lower case, no brackets)
    port: int
    address: str  # the checked IP address: connect here, not to `host`

    @property
    def host_header(self) -> str:
        """The `Host` header the original URL implies."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if _DEFAULT_PORTS.get(self.scheme) == self.port else f"{host}:{self.port}"


def unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
    6to4 or NAT64 (64:ff9b::/96) IPv6 address carries; any other address unchanged."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = ip.packed
    if packed[:12] == bytes(12) and int(ip) > 1:
        return ipaddress.IPv4Address(packed[12:])  # deprecated IPv4-compatible form
    if ip in _NAT64:
        return ipaddress.IPv4Address(packed[12:])
    return ip


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What `allow_private` opens: loopback, RFC 1918, shared address space, IPv6 ULA. Not
# the rest of what `ipaddress` calls private (0/8, 240/4, documentation ranges...).
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
    )
)


def refusal_reason(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why a connection to `ip` is refused, or None when it is allowed."""
    ip = unwrap(ip)
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_global:
        return None
    if allow_private and any(ip in network for network in _PRIVATE_NETWORKS):
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_private:
        return f"{ip} is a private address"
    return f"{ip} is not a public internet address"


def parse(url: str, *, allow_http: bool) -> SplitResult:
    """Syntax and scheme checks only; raises UnsafeUrl."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeUrl("the URL must start with https://")
    if scheme == "http" and not allow_http:
        raise UnsafeUrl("only https:// URLs are accepted")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if port == 0:
        raise UnsafeUrl("port 0 is not a valid port")
    return parts


async def check_url(url: str, *, allow_http: bool, allow_private: bool) -> CheckedTarget:
    """Resolve `url`'s host and return the address to connect to.

    Raises UnsafeUrl when the URL or any address its host resolves to is refused (one
    bad address is enough: which one a client would pick is not ours to predict), and
    UnresolvableHost when the name does not resolve.
    """
    parts = parse(url, allow_http=allow_http)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port or _DEFAULT_PORTS[scheme]
    if host in METADATA_HOSTNAMES:
        raise UnsafeUrl(f"{host} is a cloud metadata host")
    addresses = await resolve(host, port)
    for ip in addresses:
        if reason := refusal_reason(ip, allow_private=allow_private):
            shown = "" if str(ip) == host else f" ({host} resolves to it)"
            raise UnsafeUrl(reason + shown)
    first = addresses[0]
    # An IPv4-mapped answer is connected to as plain IPv4: same host, no dual-stack needed.
    address = first.ipv4_mapped if isinstance(first, ipaddress.IPv6Address) else None
    return CheckedTarget(
        url=url, scheme=scheme, host=host, port=port, address=str(address or first)
    )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order; raises UnresolvableHost.

    IP literals come back as themselves; the resolver also reads the numeric forms
    inet_aton accepts (decimal, octal, hex), which is what a client would connect to.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"{host} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # Drop an IPv6 zone ("fe80::1%eth0"): ipaddress judges the address alone.
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UnresolvableHost(f"{host} does not resolve")
    return addresses
