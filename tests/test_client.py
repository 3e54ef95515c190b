"""``devicefactory-client`` against a real server: sign in, reserve, record, upload, files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from devicefactory import client
from tests.live import LiveServer
from tests.world import PASSWORD, World


def test_regional_names_and_urls() -> None:
    assert client.base_url_for("eu-field") == "https://api-field-eu.aylanetworks.com"
    assert client.base_url_for("https://factory.example.com/") == "https://factory.example.com"
    assert len(client.ENVIRONMENTS) == 6
    with pytest.raises(Exception, match="neither one of"):
        client.base_url_for("moon-field")


def test_a_shift_on_the_line(
    world: World,
    pool: Callable[[int], None],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool(3)
    monkeypatch.setattr(client, "TOKEN_FILE", tmp_path / "token")
    server = LiveServer(database_url, master_key_file, tmp_path, background_workers=True)
    server.start()
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(client.main, ["--env", server.url, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    try:
        assert "signed in as mm@example.com" in run(
            "sign-in", "--email", "mm@example.com", "--password", PASSWORD
        )
        assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
        out = tmp_path / "out"
        assert "(3)" in run("reserve", "--model", "AY001MTP1", "--count", "3", "--out", str(out))
        devices = json.loads(next(out.glob("reserve-*.json")).read_text())
        assert len(devices) == 3
        assert next(out.glob("reserve-*-dsns.zip.p7m")).stat().st_size > 1000
        dsns = [d["dsn"] for d in devices]
        made = run(
            "record",
            dsns[0],
            "model=AY001MTP1",
            "mac=aa:bb:cc:dd:ee:01",
            "hwsig=s1",
            "dom_at=2026/11/22 08:00:00 UTC",
        )
        assert json.loads(made)["mac"] == "aabbccddee01"
        log = tmp_path / "line.log"
        log.write_text(
            "".join(
                f"2,1,2026/11/22 08:00:00 UTC,label,0,AY001MTP1,{dsn},aabbccddee0{n},m,s,s{n},\n"
                for n, dsn in enumerate(dsns[1:], start=2)
            )
            + "2,1,2026/11/22 08:00:00 UTC,label,0,AY001MTP1,AC000W999999999,aabbccddee09,m,s,s9,\n"
        )
        output = run("upload", str(log), "--type", "manufacture", code=2)  # one line fails
        assert "failure: 3/3 lines, 2 applied" in output
        action_id = output.split()[1]
        failed = run("action", action_id, "--file", "failed")
        assert failed.strip().endswith("AC000W999999999,aabbccddee09,m,s,s9,")
        jobs = json.loads(run("device", dsns[1], "--jobs"))["jobs"]
        assert [job["operation"] for job in jobs] == ["reserve", "manufacture"]
        refused = runner.invoke(client.main, ["--env", server.url, "device", "AC000W999999999"])
        assert refused.exit_code == 1
        assert "AFS-404" in refused.output
    finally:
        server.stop()
