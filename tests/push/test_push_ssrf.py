"""The SSRF guard (research/delivery.md §10, R-PUSH-9, spec §13): with the guard ON and an
injected resolver, push endpoints that resolve to internal addresses are refused, at create
and update and again before every attempt. The guard is never turned off here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.push.helpers import FAST, PUSH, FakeDNS, admin, emit_one, trace_of, until
from tests.support.hub import CAEP, RunningHub, run_hub
from tests.support.receiver import push_receiver

PUBLIC = "93.184.216.34"
PRIVATE_SETTING = "allow_private_endpoints"
CIDR_SETTING = "push_allow_cidrs"

# address -> the rule the refusal must name; every one of these is refused.
BLOCKED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "169.254.10.20": "link-local",
    "169.254.169.254": "cloud-metadata",
    "100.64.0.1": "cgnat",
    "100.127.255.254": "cgnat",
    "224.0.0.251": "multicast",
    "239.255.255.250": "multicast",
    "0.0.0.0": "this-network",
    "255.255.255.255": "reserved",
    "::1": "loopback",
    "::": "unspecified",
    "fc00::1": "unique-local",
    "fd12:3456::1": "unique-local",
    "fd00:ec2::254": "cloud-metadata",
    "fe80::1": "link-local",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped: judged by the IPv4 address inside
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "cloud-metadata",
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1": "loopback",  # NAT64 of 127.0.0.1
    "2002:c0a8:101::1": "private",  # 6to4 of 192.168.1.1
}
# Rules that allow_private_endpoints does not lift: only push_allow_cidrs names a way out.
NEVER_LIFTED = {"cloud-metadata", "multicast", "unspecified", "this-network", "reserved"}


async def create(hub: RunningHub, url: str, **delivery: Any) -> Any:
    body = {
        "delivery": {"method": PUSH, "endpoint_url": url, **delivery},
        "events_requested": [CAEP + "session-revoked"],
    }
    return await hub.client.post("/ssf/stream", json=body, headers=hub.auth())


def host_for(address: str) -> str:
    return "host-" + address.replace(":", "-").replace(".", "-") + ".example"


async def test_a_push_endpoint_resolving_to_each_blocked_class_is_refused(tmp_path: Path) -> None:
    dns = FakeDNS({host_for(a): [a] for a in BLOCKED})
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}) as hub:
        for address, rule in BLOCKED.items():
            r = await create(hub, f"https://{host_for(address)}/events")
            assert r.status_code == 400, (address, r.text)
            body = r.json()
            assert body["err"] == "invalid_request", body
            description = body["description"]
            assert f" {rule} range" in description, (address, description)  # names the rule
            assert CIDR_SETTING in description, description  # and the setting that lifts it
            assert (PRIVATE_SETTING in description) is (rule not in NEVER_LIFTED), description
        assert (await hub.client.get("/ssf/stream", headers=hub.auth())).json() == []


async def test_an_ip_literal_endpoint_is_judged_without_dns(tmp_path: Path) -> None:
    dns = FakeDNS()
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}) as hub:
        for host, rule in [
            ("127.0.0.1", "loopback"),
            ("[::1]", "loopback"),
            ("169.254.169.254", "cloud-metadata"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[fd00:ec2::254]", "cloud-metadata"),
        ]:
            r = await create(hub, f"https://{host}/events")
            assert r.status_code == 400 and f" {rule} range" in r.json()["description"], (host, r.text)
        for sneaky in (
            "https://2130706433/",
            "https://0x7f000001/",
            "https://127.1/",
        ):  # 127.0.0.1 in disguise
            r = await create(hub, sneaky)
            assert r.status_code == 400, (sneaky, r.text)
        assert dns.lookups == []


async def test_a_name_with_one_public_and_one_private_address_is_refused(tmp_path: Path) -> None:
    dns = FakeDNS({"mixed.example": [PUBLIC, "10.0.0.7"], "mixed6.example": ["2606:4700::1", "fe80::7"]})
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}) as hub:
        r = await create(hub, "https://mixed.example/events")
        assert r.status_code == 400 and "10.0.0.7" in r.json()["description"], r.text
        r = await create(hub, "https://mixed6.example/events")
        assert r.status_code == 400 and "link-local" in r.json()["description"], r.text


async def test_a_public_https_endpoint_is_accepted(tmp_path: Path) -> None:
    dns = FakeDNS({"rcv.example": [PUBLIC, "2606:4700::1"]})
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}) as hub:
        r = await create(hub, "https://rcv.example/events")
        assert r.status_code == 201, r.text  # (no SET is queued, so nothing is sent to it)


async def test_an_unresolvable_name_is_refused(tmp_path: Path) -> None:
    async with run_hub(tmp_path, app_kwargs={"resolver": FakeDNS()}) as hub:
        r = await create(hub, "https://nowhere.example/events")
        assert r.status_code == 400 and "nowhere.example" in r.json()["description"], r.text


async def test_plain_http_is_refused_unless_private_endpoints_are_allowed(tmp_path: Path) -> None:
    dns = FakeDNS({"rcv.example": [PUBLIC]})
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}) as hub:
        r = await create(hub, "http://rcv.example/events")
        assert r.status_code == 400, r.text
        assert "https" in r.json()["description"] and PRIVATE_SETTING in r.json()["description"]
        for other in ("ftp://rcv.example/events", "rcv.example/events"):
            assert (await create(hub, other)).status_code == 400


async def test_credentials_in_the_url_are_refused(tmp_path: Path) -> None:
    dns = FakeDNS({"rcv.example": [PUBLIC]})
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}) as hub:
        for url in ("https://user:secret@rcv.example/events", "https://token@rcv.example/events"):
            r = await create(hub, url)
            assert r.status_code == 400 and "authorization_header" in r.json()["description"], r.text


async def test_push_allow_cidrs_lets_a_listed_private_range_through(tmp_path: Path) -> None:
    dns = FakeDNS(
        {
            "onprem.example": ["10.20.0.5"],
            "next-door.example": ["10.21.0.5"],
            "metadata.example": ["169.254.169.254"],
        }
    )
    async with run_hub(
        tmp_path,
        app_kwargs={"resolver": dns},
        push_allow_cidrs="10.20.0.0/16",
    ) as hub:
        r = await create(hub, "https://onprem.example/events")
        assert r.status_code == 201, r.text
        r = await create(hub, "https://next-door.example/events")  # outside the listed range
        assert r.status_code == 400 and "private" in r.json()["description"], r.text
        r = await create(hub, "https://metadata.example/events")
        assert r.status_code == 400 and "cloud-metadata" in r.json()["description"], r.text


async def test_private_endpoints_allowed_still_refuse_the_cloud_metadata_service(tmp_path: Path) -> None:
    dns = FakeDNS({"meta.example": ["169.254.169.254"], "meta6.example": ["fd00:ec2::254"]})
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}, allow_private_endpoints=True) as hub:
        for name in dns.records:
            r = await create(hub, f"http://{name}/latest/meta-data/")
            assert r.status_code == 400 and "cloud-metadata" in r.json()["description"], r.text


async def test_changing_a_stream_to_a_blocked_endpoint_is_refused(tmp_path: Path) -> None:
    dns = FakeDNS({"rcv.example": [PUBLIC], "internal.example": ["192.168.0.10"]})
    async with run_hub(tmp_path, app_kwargs={"resolver": dns}) as hub:
        r = await create(hub, "https://rcv.example/events")
        assert r.status_code == 201, r.text
        stream = r.json()
        bad = {"method": PUSH, "endpoint_url": "https://internal.example/events"}
        for method in ("PATCH", "PUT"):
            r = await hub.client.request(
                method,
                "/ssf/stream",
                json={"stream_id": stream["stream_id"], "delivery": bad},
                headers=hub.auth(),
            )
            assert r.status_code == 400 and "private" in r.json()["description"], (method, r.text)
        r = await hub.client.get("/ssf/stream", params={"stream_id": stream["stream_id"]}, headers=hub.auth())
        assert r.json()["delivery"]["endpoint_url"] == "https://rcv.example/events"


async def test_dns_rebinding_after_create_is_blocked_at_the_attempt(tmp_path: Path) -> None:
    async with push_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        dns = FakeDNS({"rebind.example": [PUBLIC]})
        async with run_hub(tmp_path, app_kwargs={"resolver": dns}, push_retry_schedule=FAST) as hub:
            r = await create(hub, f"https://rebind.example:{port}/events")
            assert r.status_code == 201, r.text
            stream = r.json()
            subject = {"format": "email", "email": "alice@example.com"}
            await hub.add_subject(stream["stream_id"], subject)
            dns.records["rebind.example"] = ["127.0.0.1"]  # the name now points at the hub's host
            jti = await emit_one(hub)

            async def tried_twice() -> bool:
                return len((await trace_of(hub, jti))["attempts"]) >= 2

            await until(tried_twice)
            t = await trace_of(hub, jti)
            assert t["state"] == "pending"
            for a in t["attempts"]:
                assert a["status"] is None and a["outcome"] == "retry"
                assert a["error"].startswith("blocked:") and "loopback" in a["error"], a
            assert dns.lookups.count("rebind.example") >= 3  # create, then before every attempt
            r = await hub.client.get("/ssf/admin/streams", headers=admin(hub))
            (view,) = r.json()
            assert "blocked" in view["last_error"]
        assert receiver.received == []  # nothing reached the loopback receiver
