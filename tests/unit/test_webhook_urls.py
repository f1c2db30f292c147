"""The webhook URL and address rules (SSRF), and the vetter that resolves host names.
No test here opens a connection: resolvers and network backends are stand-ins that
record what they were asked."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import httpcore
import pytest

from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.webhooks.urls import (
    check_address,
    embedded_ipv4,
    forbidden_reason,
    parse_webhook_url,
)
from chatsys.infra.webhook_http import AddressVetter, HttpWebhookSender, Unresolvable


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1", "loopback"),
        ("http://127.1.2.3:8080/x", "127.1.2.3", "loopback"),
        ("http://10.0.0.1/", "10.0.0.1", "private"),
        ("http://172.16.5.4/", "172.16.5.4", "private"),
        ("http://192.168.1.1/", "192.168.1.1", "private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "metadata"),
        ("http://169.254.1.1/", "169.254.1.1", "link-local"),
        ("http://100.64.0.1/", "100.64.0.1", "carrier-grade NAT"),
        ("http://0.0.0.0/", "0.0.0.0", "unspecified"),  # noqa: S104
        ("http://0/", "0.0.0.0", "unspecified"),  # noqa: S104
        ("http://2130706433/", "127.0.0.1", "loopback"),
        ("http://0x7f000001/", "127.0.0.1", "loopback"),
        ("http://0x7f.1/", "127.0.0.1", "loopback"),
        ("http://0177.0.0.1/", "127.0.0.1", "loopback"),
        ("http://127.1/", "127.0.0.1", "loopback"),
        ("http://127.0.0.1./", "127.0.0.1", "loopback"),
        ("http://[::1]/", "::1", "loopback"),
        ("http://[::]/", "::", "unspecified"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        ("http://[fe80::1%25eth0]/", "fe80::1", "link-local"),
        ("http://[fc00::1]/", "fc00::1", "private"),
        ("http://[fd12:3456::1]/", "fd12:3456::1", "private"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254", "metadata"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1", "loopback"),
        ("http://[::ffff:7f00:1]/", "::ffff:7f00:1", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe", "metadata"),
        ("http://[::127.0.0.1]/", "::7f00:1", "loopback"),
        ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1", "loopback"),  # NAT64
        ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1", "private"),
        ("http://[2002:7f00:1::]/", "2002:7f00:1::", "loopback"),  # 6to4
        ("http://[ff02::1]/", "ff02::1", "multicast"),
        ("http://224.0.0.1/", "224.0.0.1", "multicast"),
        ("http://255.255.255.255/", "255.255.255.255", "broadcast"),
        ("http://240.0.0.1/", "240.0.0.1", "reserved"),
        ("http://192.0.2.10/", "192.0.2.10", "documentation"),
        ("http://[2001:db8::1]/", "2001:db8::1", "documentation"),
    ],
)
def test_every_spelling_of_a_forbidden_address_is_refused(
    url: str, address: str, reason: str
) -> None:
    target = parse_webhook_url(url)
    assert target.address == ipaddress.ip_address(address)
    with pytest.raises(InvalidInput, match=reason) as refused:
        check_address(target.address, allow_private=False)
    assert str(target.address) in refused.value.detail


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.0.0.1", True),
        ("fe80::1", True),
        ("::ffff:127.0.0.1", True),
        ("169.254.169.254", False),  # metadata: never
        ("fd00:ec2::254", False),
        ("0.0.0.0", False),  # noqa: S104 (unspecified: never)
        ("::", False),
        ("224.0.0.1", False),  # multicast: never
    ],
)
def test_allowing_private_networks_keeps_metadata_and_odd_addresses_refused(
    address: str, allowed: bool
) -> None:
    why = forbidden_reason(ipaddress.ip_address(address), allow_private=True)
    assert (why is None) is allowed, why


def test_embedded_ipv4_is_found_in_every_wrapping() -> None:
    v4 = ipaddress.IPv4Address("127.0.0.1")
    for wrapped in ("::ffff:127.0.0.1", "64:ff9b::127.0.0.1", "2002:7f00:1::", "::127.0.0.1"):
        assert embedded_ipv4(ipaddress.IPv6Address(wrapped)) == v4, wrapped
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "must use http or https"),
        ("file:///etc/passwd", "must use http or https"),
        ("gopher://example.com/", "must use http or https"),
        ("example.com/hook", "must use http or https"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https://example.com:0/", "invalid port"),
        ("https://example.com:99999/", "invalid port"),
        ("https:///path", "no host"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\n", "whitespace"),
        ("https://" + "a" * 2100 + ".com/", "the limit is 2048"),
        ("http://1.2.3.4.5/", "not a valid IPv4"),
        ("http://example.123/", "not a valid IPv4"),
        ("http://256.0.0.1/", "not a valid IPv4"),
        ("http://bad_host-.com/", "not a valid host name"),
        ("https://b\u00fccher.example/", "must be ASCII"),  # its xn-- form is the URI
        ("https://\U000e0d79", "must be ASCII"),  # found by the fuzz: it was accepted
        ("https://example.com/\u00e9t\u00e9", "must be ASCII"),
    ],
)
def test_bad_urls_are_refused_naming_the_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_webhook_url(url)


def test_an_international_host_name_is_taken_in_its_xn_form() -> None:
    assert parse_webhook_url("https://xn--bcher-kva.example/hook").host == "xn--bcher-kva.example"


def test_a_good_url_keeps_its_host_for_the_host_header() -> None:
    target = parse_webhook_url("https://Hooks.Example.com:8443/in?x=1#frag")
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 8443)
    assert target.target == "/in?x=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.address is None
    assert parse_webhook_url("http://[2606:4700::1111]/").host_header == "[2606:4700::1111]"


def _resolver(answers: dict[str, Sequence[str]], asked: list[str]) -> Any:
    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        if host not in answers:
            raise OSError("Name or service not known")
        return answers[host]

    return resolve


async def test_every_resolved_address_is_checked() -> None:
    asked: list[str] = []
    vetter = AddressVetter(
        resolve=_resolver(
            {
                "mixed.example": ["93.184.216.34", "127.0.0.1"],
                "public.example": ["93.184.216.34", "2606:4700::1111"],
                "sneaky.example": ["::ffff:10.0.0.1"],
            },
            asked,
        )
    )
    with pytest.raises(InvalidInput, match=r"'mixed.example' resolves to 127.0.0.1, a loopback"):
        await vetter.vet("https://mixed.example/hook")
    with pytest.raises(InvalidInput, match="private"):
        await vetter.vet("https://sneaky.example/hook")
    _, addresses = await vetter.vet("https://public.example/hook")
    assert [str(a) for a in addresses] == ["93.184.216.34", "2606:4700::1111"]
    with pytest.raises(Unresolvable):
        await vetter.vet("https://nowhere.example/")
    await vetter.vet("http://8.8.8.8/")  # a literal needs no lookup
    assert asked == ["mixed.example", "sneaky.example", "public.example", "nowhere.example"]


async def test_localhost_resolves_to_loopback_and_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidInput, match=r"'localhost' resolves to .*loopback") as refused:
        await AddressVetter().vet("http://localhost:9/")
    assert "set CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true" in refused.value.detail


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://[::1]:9/", "http://10.0.0.1/"])
async def test_a_refusal_the_setting_would_lift_names_it(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await AddressVetter().vet(url)
    assert refused.value.detail.endswith(
        "to let webhooks reach loopback and private networks (local development), "
        "set CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true"
    )
    target, _ = await AddressVetter(allow_private=True).vet(url)  # and it does lift it
    assert target.address is not None


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://224.0.0.1/", "http://0.0.0.0/"])
async def test_a_refusal_the_setting_would_not_lift_does_not_name_it(url: str) -> None:
    for vetter in (AddressVetter(), AddressVetter(allow_private=True)):
        with pytest.raises(InvalidInput) as refused:
            await vetter.vet(url)
        assert "CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS" not in refused.value.detail


class _NoConnections(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.attempts.append((host, port))
        raise httpcore.ConnectError("this test allows no connection")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:10.0.0.1]/",
        "http://metadata.example/",
    ],
)
async def test_the_sender_refuses_before_connecting(url: str) -> None:
    backend = _NoConnections()
    resolve = _resolver({"metadata.example": ["169.254.169.254"]}, [])
    sender = HttpWebhookSender(AddressVetter(resolve=resolve), network_backend=backend)
    result = await sender.send(url, {"webhook-id": "msg_x"}, b"{}")
    assert result.status_code is None
    assert not result.retryable
    assert result.error is not None
    assert result.error.startswith("refused: ")
    assert backend.attempts == []
