"""Receivers' push credentials are sealed in the store and shown to no one but their owner."""

from __future__ import annotations

from pathlib import Path

from tests.support.hub import run_hub

SECRET = "Bearer push-credential-of-agent-1"


async def test_the_store_file_holds_no_push_credential(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with run_hub(data, allow_private_endpoints=True) as hub:
        delivery = {
            "method": "urn:ietf:rfc:8935",
            "endpoint_url": "http://127.0.0.1:9/ssf",
            "authorization_header": SECRET,
        }
        s = await hub.create_stream(delivery=delivery)
        own = await hub.client.get(f"/ssf/stream?stream_id={s['stream_id']}", headers=hub.auth())
        assert own.json()["delivery"]["authorization_header"] == SECRET  # its owner reads it back
        listed = await hub.client.get("/ssf/admin/streams", headers=hub.auth("secops", "ssf.admin"))
        assert SECRET not in listed.text  # an admin does not
        stored = b"".join(p.read_bytes() for p in data.glob("hub.sqlite3*"))
        assert SECRET.encode() not in stored and b"sealed:" in stored
    assert (data / "keys" / "secrets.json").stat().st_mode & 0o777 == 0o600
