"""The master key held wrapped by a key inside a PKCS#11 token (SoftHSM2), SPEC §12."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests.live import LiveServer
from tests.world import World

from devicefactory.config import Settings
from devicefactory.keys.crypto import encrypt_verify_token
from devicefactory.keys.hsm import PREFIX, HsmError
from devicefactory.keys.master import load_master_key

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh SoftHSM2 token of this test's own: the PKCS#11 settings that name it."""
    module = next((m for m in MODULE_CANDIDATES if Path(m).exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        if os.environ.get("CI"):
            pytest.fail("SoftHSM2 is missing (.ci/run installs Debian's softhsm2)")
        pytest.skip("needs SoftHSM2 (apt-get install softhsm2)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    config = tmp_path / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(config))
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "factory",
            "--so-pin",
            "1234",
            "--pin",
            "5678",
        ],
        check=True,
        capture_output=True,
    )
    return {
        "DEVICEFACTORY_MASTER_KEY_PKCS11_MODULE": module,
        "DEVICEFACTORY_MASTER_KEY_PKCS11_TOKEN_LABEL": "factory",
        "DEVICEFACTORY_MASTER_KEY_PKCS11_PIN": "5678",
        "DEVICEFACTORY_MASTER_KEY_PKCS11_KEY_LABEL": "devicefactory-master",
        "SOFTHSM2_CONF": str(config),
    }


def _settings(token: dict[str, str], key_file: Path, **changes: str) -> Settings:
    values = {name.removeprefix("DEVICEFACTORY_").lower(): value for name, value in token.items()}
    values.pop("softhsm2_conf")
    return Settings(master_key_file=key_file, **{**values, **changes})


def test_the_master_key_never_rests_in_clear(token: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key = load_master_key(_settings(token, key_file))
    stored = key_file.read_bytes()
    assert stored.startswith(PREFIX)
    secret = key.secret_bytes()
    assert base64.b64encode(secret) not in stored
    assert secret not in stored
    assert secret.hex().encode() not in stored
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    again = load_master_key(_settings(token, key_file))  # unwrapped by the token again
    assert again.key_id == key.key_id
    with pytest.raises(HsmError, match="could not be used"):
        load_master_key(_settings(token, key_file, master_key_pkcs11_pin="0000"))
    with pytest.raises(HsmError, match="has no AES key labelled 'another-key'"):
        load_master_key(_settings(token, key_file, master_key_pkcs11_key_label="another-key"))
    load_master_key(_settings(token, tmp_path / "other.key", master_key_pkcs11_key_label="another-key"))
    with pytest.raises(HsmError, match="could not unwrap"):  # wrapped by another key of the token
        load_master_key(_settings(token, key_file, master_key_pkcs11_key_label="another-key"))
    plain = tmp_path / "plain.key"
    plain.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    with pytest.raises(HsmError, match="does not hold an HSM-wrapped master key"):
        load_master_key(_settings(token, plain))


@pytest.mark.slow
def test_a_service_on_the_hsm_fills_its_pool_reserves_and_verifies(
    token: dict[str, str], database_url: str, tmp_path: Path, world: World
) -> None:
    key_file = tmp_path / "hsm-master.key"
    env = {**token, "DEVICEFACTORY_KEY_POOL_TARGET": "4", "DEVICEFACTORY_KEY_WORKERS": "2"}
    server = LiveServer(database_url, key_file, tmp_path, background_workers=True, extra_env=env)
    server.start()
    headers = {"Authorization": f"auth_token {world.token('mm')}"}
    try:
        deadline = time.monotonic() + 120
        while (reserved := _reserve(server, headers)).status_code != 200:
            assert time.monotonic() < deadline, reserved.text  # the pool fills, sealed via the HSM key
            time.sleep(0.5)
        device = reserved.json()[0]["device"]
        assert _verify(server, headers, device) == 200
        server.stop()
        server.start()  # the key is unwrapped by the token again
        assert _verify(server, headers, device) == 200
    finally:
        server.stop()
    assert key_file.read_bytes().startswith(PREFIX)


def _reserve(server: LiveServer, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "AY001MTP1", "count": 1}
    return httpx.post(
        f"{server.url}/devicefactory/v1/devices/reserve", json=body, headers=headers, timeout=30
    )


def _verify(server: LiveServer, headers: dict[str, str], device: dict[str, str]) -> int:
    time.sleep(1.01)  # a token is accepted once: each its own second
    message = f"{device['dsn']}:{int(time.time())}".encode()
    token = base64.b64encode(encrypt_verify_token(device["public_key"], message)).decode()
    url = f"{server.url}/devicefactory/v1/devices/{device['dsn']}/verify"
    return httpx.post(url, json={"token": token}, headers=headers, timeout=30).status_code
