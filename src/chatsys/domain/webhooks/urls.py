"""Which webhook URLs the service may call: the URL rules and the address rules (SSRF).

A URL must be an ASCII URI (RFC 3986, as the API document's ``format: uri`` says; an
international host name in its ``xn--`` form), http(s), at most ``max_length``
characters, without credentials, with a host. Every address the host stands for is
checked: a literal IP in any spelling (``0x7f000001``, ``2130706433``, ``0177.0.0.1``,
``[::ffff:127.0.0.1]``) is normalised first, an IPv6 address that embeds an IPv4 one
(IPv4-mapped and -compatible, NAT64, 6to4, Teredo) is judged by that one too. Loopback, private,
link-local, shared (CGNAT), reserved and documentation ranges are refused unless
private networks are allowed; unspecified, multicast, broadcast and cloud metadata
addresses are refused always. Resolving host names is the adapter's job (at
creation and again at every send); this module is pure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from chatsys.domain.shared.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Refused even when private networks are allowed.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS DNS over IPv6
    )
)
_ALWAYS: tuple[tuple[_V4 | _V6, str], ...] = (
    (_V4("0.0.0.0/8"), "an unspecified ('this network') address"),
    (_V6("::/128"), "an unspecified address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V6("ff00::/8"), "a multicast address"),
    (_V4("255.255.255.255/32"), "the broadcast address"),
)
# Refused unless private networks are allowed. Listed here, not left to ``is_global``,
# whose answers changed between Python releases.
_PRIVATE: tuple[tuple[_V4 | _V6, str], ...] = (
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V6("::1/128"), "a loopback address"),
    (_V4("10.0.0.0/8"), "a private address"),
    (_V4("172.16.0.0/12"), "a private address"),
    (_V4("192.168.0.0/16"), "a private address"),
    (_V6("fc00::/7"), "a private (unique local) address"),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V4("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (_V4("192.0.0.0/24"), "a reserved (IETF protocol) address"),
    (_V4("192.0.2.0/24"), "a documentation address"),
    (_V4("198.51.100.0/24"), "a documentation address"),
    (_V4("203.0.113.0/24"), "a documentation address"),
    (_V6("2001:db8::/32"), "a documentation address"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("192.88.99.0/24"), "a reserved (6to4 relay) address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_V6("100::/64"), "a discard-only address"),
    (_V6("2001::/23"), "a reserved (IETF protocol) address"),
    (_V6("::/8"), "a reserved address"),
)
_NAT64 = _V6("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A URL that passed the URL rules. ``host`` is lower-case ASCII without brackets;
    ``address`` is set when the host is a literal IP (in whatever spelling)."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # path and query, what goes on the request line
    address: IPAddress | None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_webhook_url(url: str, *, max_length: int = DEFAULT_MAX_URL_LENGTH) -> WebhookTarget:
    """Apply the URL rules; the error names the rule broken."""
    if len(url) > max_length:
        raise InvalidInput(f"webhook URL is {len(url)} characters long; the limit is {max_length}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput("webhook URL must not contain whitespace or control characters")
    if not url.isascii():
        raise InvalidInput(
            "webhook URL must be ASCII, a URI: percent-encode other characters, and give "
            "an international host name in its xn-- form"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidInput(f"webhook URL is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        shown = f"'{parts.scheme}'" if parts.scheme else "none"
        raise InvalidInput(f"webhook URL must use http or https (scheme: {shown})")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise InvalidInput("webhook URL must not contain credentials (user:password@)")
    raw_host = parts.hostname
    if not raw_host:
        raise InvalidInput("webhook URL has no host")
    port = _port(parts, scheme)
    address = _literal_address(raw_host)
    host = str(address) if address is not None else _host_name(raw_host)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(url, scheme, host, port, target, address)


def _port(parts: SplitResult, scheme: str) -> int:
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("webhook URL has an invalid port") from None
    if port == 0:
        raise InvalidInput("webhook URL has an invalid port")
    return port if port is not None else _DEFAULT_PORTS[scheme]


def _host_name(host: str) -> str:
    name = host.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput(f"webhook URL host {host!r} is not a valid host name") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"webhook URL host {host!r} is not a valid host name")
    return ascii_name


def _literal_address(host: str) -> IPAddress | None:
    """The IP a literal host stands for, as a browser or ``inet_aton`` would read it."""
    if ":" in host:  # urlsplit takes IPv6 out of its brackets
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise InvalidInput(f"webhook URL host [{host}] is not a valid IPv6 address") from None
    return _legacy_ipv4(host.rstrip("."))


def _number(part: str) -> int | None:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        if part.isdigit():
            return int(part)
    except ValueError:
        return None
    return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """WHATWG's IPv4 parser: 1 to 4 parts, each decimal, octal (``0`` prefix) or hex
    (``0x``); the last part fills the remaining bytes. Not numeric: a host name."""
    parts = host.split(".")
    last = parts[-1].lower()
    if not (
        last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:]))
    ):
        return None  # fmt: skip
    numbers = [_number(p) for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise InvalidInput(f"webhook URL host {host!r} is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise InvalidInput(f"webhook URL host {host!r} is not a valid IPv4 address")
    total = values[-1]
    for index, value in enumerate(values[:-1]):
        total += value << (8 * (3 - index))
    return ipaddress.IPv4Address(total)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: IPv4-mapped, IPv4-compatible, NAT64, 6to4,
    Teredo (its client)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(int(address))
    return None


def forbidden_reason(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why the service must not connect to ``address``; None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop any %scope
        inner = embedded_ipv4(address)
        if inner is not None:
            why = forbidden_reason(inner, allow_private=allow_private)
            if why is not None:
                return f"{why} (embedded in {address})"
            if address in _NAT64:  # DNS64 answers: judged by the IPv4 address alone
                return None
    if address in _METADATA:
        return "a cloud metadata address"
    ranges = _ALWAYS if allow_private else _ALWAYS + _PRIVATE
    for network, why in ranges:
        if address.version == network.version and address in network:
            return why
    if not allow_private and not address.is_global:
        return "not a public address"
    return None


def check_address(address: IPAddress, *, allow_private: bool, host: str | None = None) -> None:
    """Raise ``InvalidInput`` naming the reason when ``address`` is forbidden."""
    why = forbidden_reason(address, allow_private=allow_private)
    if why is None:
        return
    if host is not None and host != str(address):
        raise InvalidInput(f"webhook URL host {host!r} resolves to {address}, {why}")
    raise InvalidInput(f"webhook URL points at {address}, {why}")
