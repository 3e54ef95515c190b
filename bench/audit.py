"""What the audit log costs: reserve(1) and upload throughput with recording off and on.

Run alone: ``python -m bench.audit``. Each measurement starts a fresh SQLite database and
``devicefactory serve`` (one web worker, no background workers); the same number of
clients send requests back to back for a fixed count:

- reserve: ``POST /devices/reserve`` of one DSN (the audited write with the least work of
  its own, so the entry's share is the largest);
- upload: ``POST /factory_actions`` of a 100-line manufacture log (the action is created
  and its file stored; the lines are worked later by the runner, which writes no entries).

Recording is switched off with ``DEVICEFACTORY_AUDIT=off``, a switch that exists for this
benchmark only. Modes alternate over the rounds; the figure is the ratio of the median
rates, on over off (target: at most 10 % slower).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.keycache import MASTER_KEY_FILE, cached_pairs, stock_pool
from bench.report import Check
from bench.server import database_url, devicefactory_server
from bench.world import EMAIL, MODEL, PASSWORD, RESERVE_PATH, create_module_maker, prepare_database, sign_in

ROUNDS = 3
BATCHES = 15  # interleaved: batches of each mode, in turn
BATCH = 20
CLIENTS = 4
RESERVES = 160  # per round and mode
UPLOADS = 160
ACTIONS_PATH = "/devicefactory/v1/factory_actions"
TARGET = 0.90  # rate with the audit on / rate with it off
LOG = "".join(
    f"2,1318462302,2016/11/24 10:34:23 UTC,label,0,{MODEL},AC000W{n:09d},{n:012x},WD101a,p{n},sig-{n},\n"
    for n in range(1, 101)
).encode()


def _rate(
    count: int, send: Callable[[httpx.Client], httpx.Response], base_url: str, headers: dict[str, str]
) -> float:
    """Requests per second: ``count`` requests by ``CLIENTS`` clients, each back to back."""
    per_client = count // CLIENTS

    def client_run(_: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            for _ in range(per_client):
                response = send(client)
                if response.status_code not in (200, 202):
                    raise RuntimeError(
                        f"{response.request.url} answered {response.status_code}: {response.text[:300]}"
                    )

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client_run, range(CLIENTS)))
    return per_client * CLIENTS / (time.perf_counter() - started)


def measure(audit: str) -> dict[str, float]:
    """Reserve and upload rates on a fresh server with ``DEVICEFACTORY_AUDIT=<audit>``."""
    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        workdir = Path(tmp)
        factory = prepare_database(database_url(workdir))
        create_module_maker(factory)
        stock_pool(factory, cached_pairs(RESERVES + CLIENTS))
        with (
            devicefactory_server(
                workdir, MASTER_KEY_FILE, web_workers=1, extra_env={"DEVICEFACTORY_AUDIT": audit}
            ) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            headers = sign_in(client)
            client.post(RESERVE_PATH, json={"model": MODEL, "count": 1}, headers=headers)  # warm up
            reserve = _rate(
                RESERVES,
                lambda c: c.post(RESERVE_PATH, json={"model": MODEL, "count": 1}),
                server.url,
                headers,
            )
            files = {"file": ("line.log", LOG, "text/plain")}
            upload = _rate(
                UPLOADS,
                lambda c: c.post(ACTIONS_PATH, files=files, data={"type": "manufacture"}),
                server.url,
                headers,
            )
            return {"reserve": reserve, "upload": upload}


def interleaved() -> dict[str, float]:
    """In one process and one database, batches with recording off and on in turn (the
    app's audit hook removed and put back): on a busy machine the load drifts alike for
    both. Returns the on/off rate ratios."""
    from fastapi.testclient import TestClient

    from devicefactory.app import create_app
    from devicefactory.config import Settings

    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        url = database_url(Path(tmp))
        factory = prepare_database(url)
        create_module_maker(factory)
        stock_pool(factory, cached_pairs(BATCHES * BATCH * 2 + 1))
        settings = Settings(
            database_url=url, master_key_file=MASTER_KEY_FILE, run_workers=False, key_pool_target=0
        )
        app = create_app(settings)
        recorder = app.state.audit_hook
        seconds = {(name, mode): 0.0 for name in ("reserve", "upload") for mode in ("off", "on")}
        with TestClient(app) as client:
            answer = client.post("/users/sign_in.json", json={"user": {"email": EMAIL, "password": PASSWORD}})
            client.headers["Authorization"] = f"auth_token {answer.json()['access_token']}"
            files = {"file": ("line.log", LOG, "text/plain")}
            calls: dict[str, Callable[[], Any]] = {
                "reserve": lambda: client.post(RESERVE_PATH, json={"model": MODEL, "count": 1}),
                "upload": lambda: client.post(ACTIONS_PATH, files=files, data={"type": "manufacture"}),
            }
            calls["reserve"]()  # warm up
            for _ in range(BATCHES):
                for name, call in calls.items():
                    for mode in ("off", "on"):
                        app.state.audit_hook = recorder if mode == "on" else None
                        started = time.perf_counter()
                        for _ in range(BATCH):
                            if call().status_code not in (200, 202):
                                raise RuntimeError(f"{name} failed")
                        seconds[name, mode] += time.perf_counter() - started
        return {name: seconds[name, "off"] / seconds[name, "on"] for name in calls}


def run() -> dict[str, Any]:
    """Separate servers off and on (rates), then the interleaved ratios, which are checked."""
    rates: dict[str, dict[str, list[float]]] = {
        "off": {"reserve": [], "upload": []},
        "on": {"reserve": [], "upload": []},
    }
    for _ in range(ROUNDS):
        for mode in ("off", "on"):
            for name, value in measure(mode).items():
                rates[mode][name].append(value)
    medians = {
        mode: {name: statistics.median(v) for name, v in found.items()} for mode, found in rates.items()
    }
    served = {name: medians["on"][name] / medians["off"][name] for name in ("reserve", "upload")}
    # The check uses the interleaved ratios: separate servers minutes apart measure the
    # machine's load as much as the audit.
    ratios = interleaved()
    checks = [
        Check(f"{name} rate, audit on/off", ratio, TARGET, higher_is_better=True)
        for name, ratio in ratios.items()
    ]
    print(
        "audit, separate servers (4 clients): "
        + "; ".join(
            f"{name} {medians['off'][name]:.0f}/s off, {medians['on'][name]:.0f}/s on ({served[name]:.3f})"
            for name in served
        )
    )
    print(
        "audit, in process, interleaved: "
        + "; ".join(
            f"{name} on/off {ratios[name]:.3f} (target {check.target_text()}) {check.verdict()}"
            for name, check in zip(ratios, checks, strict=True)
        )
    )
    return {
        "rates_per_second": rates,
        "medians": medians,
        "separate_servers_ratios": served,
        "interleaved_ratios": ratios,
        "checks": [c.as_dict() for c in checks],
    }


if __name__ == "__main__":
    run()
