"""The reserve bundle decrypts to the reserved devices; private keys appear nowhere."""

from __future__ import annotations

import base64
import io
import logging
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs7
from sqlalchemy import MetaData, select
from sqlalchemy.orm import Session, sessionmaker
from tests.api import reservation
from tests.world import World, factory_certificate

from devicefactory.keys.crypto import (
    MasterKey,
    SealedKeyPair,
    device_xml,
    encrypt_verify_token,
    unseal_private_key,
)
from devicefactory.tables.devices import Device

V1 = "/devicefactory/v1"


def test_bundle_decrypts_with_the_oem_key_to_every_reserved_device(
    world: World, pool: Callable[[int], None], tmp_path: Path
) -> None:
    pool(5)
    action_id, devices = reservation(world, "mm", "AY001MTP1", 5)
    response = world.client.get(f"{V1}/factory_actions/{action_id}/files/xml", headers=world.headers("mm"))
    assert response.status_code == 200
    bundle = response.content
    assert b"PUBLIC KEY" not in bundle  # encrypted, not a plain zip
    certificate_pem, key_pem = factory_certificate()

    # With Python's CMS implementation...
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(certificate_pem)
    key = load_pem_private_key(key_pem, None)
    plain = pkcs7.pkcs7_decrypt_der(bundle, certificate, key, [])  # type: ignore[arg-type]
    _assert_zip_matches(plain, devices)

    # ...and with the exact openssl command of the documentation.
    (tmp_path / "F").write_bytes(bundle)
    (tmp_path / "KEY").write_bytes(key_pem)
    subprocess.run(
        ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", "F", "-inkey", "KEY", "-out", "dsns.zip"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    _assert_zip_matches((tmp_path / "dsns.zip").read_bytes(), devices)
    printed = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", "F"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "aes-256" in printed.lower()


def _assert_zip_matches(data: bytes, devices: list[dict[str, str]]) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == sorted(f"{d['dsn']}.xml" for d in devices)
        for device in devices:
            xml = archive.read(f"{device['dsn']}.xml")
            assert xml == device_xml(device["dsn"], device["public_key"])
            assert f"<f-device><dsn>{device['dsn']}</dsn><public-key>".encode() in xml


def test_other_oems_cannot_download_the_bundle(world: World, pool: Callable[[int], None]) -> None:
    pool(1)
    action_id = reservation(world, "mm", "AY001MTP1", 1).action_id
    for user in ("mm2", "mom", "som"):
        for kind in ("xml", "csv", "log"):
            response = world.client.get(
                f"{V1}/factory_actions/{action_id}/files/{kind}", headers=world.headers(user)
            )
            assert response.status_code == 404
    assert (
        world.client.get(
            f"{V1}/factory_actions/{action_id}/files/xml", headers=world.headers("mm_admin")
        ).status_code
        == 200
    )


def test_no_private_key_leaves_the_service(
    world: World,
    pool: Callable[[int], None],
    session_factory: sessionmaker[Session],
    master_key_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pool(3)
    seen: list[bytes] = []
    action_id, devices = reservation(world, "mm", "AY001MTP1", 3)
    dsn = devices[0]["dsn"]
    client = world.client
    for method, path, user, body in [
        (
            "post",
            f"{V1}/devices/{dsn}/manufacture",
            "mm",
            {
                "model": "AY001MTP1",
                "mac": "aabbccddeeff",
                "hwsig": "sig-1",
                "dom_at": "2026/11/01 10:00:00 UTC",
            },
        ),
        (
            "post",
            f"{V1}/devices/{dsn}/verify",
            "mm",
            {
                "token": base64.b64encode(
                    encrypt_verify_token(devices[0]["public_key"], f"{dsn}:{int(world_now(client))}".encode())
                ).decode()
            },
        ),
        ("post", f"{V1}/devices/{dsn}/verify", "mm", {"token": "bm90IGEgdG9rZW4="}),
        (
            "post",
            f"{V1}/devices/{dsn}/provision",
            "mom",
            {"model": "AY001MTP1", "oem_model": "m", "oem_host_version": "1"},
        ),
        ("get", f"{V1}/devices/{dsn}", "mm", None),
        ("get", f"{V1}/devices/{dsn}/jobs", "mm", None),
        ("get", f"{V1}/factory_actions/{action_id}", "mm", None),
        ("get", f"{V1}/factory_actions/{action_id}/files/csv", "mm", None),
        ("get", f"{V1}/factory_actions/{action_id}/files/log", "mm", None),
        ("get", f"{V1}/factory_actions", "mm", None),
        ("get", "/metrics", "mm", None),
    ]:
        response = getattr(client, method)(
            path, headers=world.headers(user), **({"json": body} if body else {})
        )
        seen.append(response.content)
        seen.append(str(response.headers).encode())
    seen.append(caplog.text.encode())
    seen.extend(_every_database_value(session_factory))

    master = MasterKey.load_or_create(master_key_file)
    with session_factory() as session:
        stored = session.scalars(select(Device)).all()
        secrets = [
            unseal_private_key(master, SealedKeyPair(d.public_key, d.sealed_private_key)) for d in stored
        ]
    assert len(secrets) == 3
    haystack = b"\n".join(seen)
    assert b"PRIVATE KEY" not in haystack
    for der in secrets:
        load = der  # the raw DER, its base64 (as in a PEM) and its hex must all be absent
        for needle in (load[40:80], base64.b64encode(load)[64:128], load.hex()[80:160].encode()):
            assert needle not in haystack


def world_now(client: object) -> float:
    clock = client.app.state.clock  # type: ignore[attr-defined]
    return float(clock().timestamp())


def _every_database_value(factory: sessionmaker[Session]) -> list[bytes]:
    values: list[bytes] = []
    metadata = MetaData()
    with factory() as session:
        metadata.reflect(session.get_bind())
        for table in metadata.sorted_tables:
            for row in session.execute(table.select()):
                for value in row:
                    values.append(value if isinstance(value, bytes) else str(value).encode())
    return values


def test_two_fillers_of_one_pool_stop_near_its_target(
    session_factory: sessionmaker[Session], master_key_file: Path
) -> None:
    """Two workers' fillers on one pool: each counts the other's keys while it fills, so the
    pool ends within the keys they had in flight of its target, not at twice it."""
    import threading

    from devicefactory.keys.pool import KEYS_PER_TASK, KeyPoolFiller

    key = MasterKey.load_or_create(master_key_file)
    target, workers = 24, 1
    fillers = [
        KeyPoolFiller(session_factory, key, target=target, workers=workers, poll_seconds=0) for _ in range(2)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=filler.run, args=(stop,)) for filler in fillers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while fillers[0]._size() < target and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # what was in flight is stored by now
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    in_flight_at_most = len(fillers) * workers * 2 * KEYS_PER_TASK
    assert target <= fillers[0]._size() <= target + in_flight_at_most < 2 * target


def test_a_pool_filled_by_workers_serves_a_reserve(
    world: World, session_factory: sessionmaker[Session], master_key_file: Path
) -> None:
    """The real filler: worker processes make keys that a reserve then hands out."""
    import threading

    from devicefactory.keys.pool import KeyPoolFiller

    filler = KeyPoolFiller(
        session_factory, MasterKey.load_or_create(master_key_file), target=4, workers=2, poll_seconds=0.05
    )
    stop = threading.Event()
    thread = threading.Thread(target=filler.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while filler._size() < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(60)
    assert filler._size() >= 4
    devices = reservation(world, "mm", "AY001MTP1", 4).devices
    assert len({d["public_key"] for d in devices}) == 4
    metrics = world.client.get("/metrics").text
    assert "devicefactory_key_pool_size" in metrics
    assert "devicefactory_keys_generated_total" in metrics
