"""Validate answers each line exactly as submit then does, across batch boundaries (§7).

Validate applies nothing, so it must remember what its earlier batches would have
changed: a mac claimed on line 1 is taken for line 900, a DSN manufactured by line 3
is "identical" or a "conflict" for line 700. The property test generates files full of
such repeats, with a batch of a few lines so that boundaries fall everywhere, and
compares validate's outcomes with submit's on the same starting state.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.api import HEAD, action, upload
from tests.world import World

from devicefactory.actions.runner import ActionRunner
from devicefactory.config import Settings
from devicefactory.db import session_scope
from devicefactory.devices import queries
from devicefactory.tables.actions import ActionLine, ValidateOverlay
from devicefactory.tables.devices import Device

# Each example works on DSNs, macs and hwsigs of its own, so examples never meet.
_EXAMPLES = itertools.count(1)
_DOM = datetime(2016, 11, 24, 10, 34, 23, tzinfo=UTC)


def _mac(example: int, n: int) -> str:
    return f"{example:06x}{n:06x}"


def _insert(factory: sessionmaker[Session], rows: list[dict[str, Any]]) -> None:
    defaults = {
        "public_key": "k",
        "sealed_private_key": b"k",
        "reserved_at": _DOM,
        "datapoint_count": 0,
        "last_job_failed": False,
    }
    with session_scope(factory) as session:
        queries.insert_devices(session, [{**defaults, **row} for row in rows])


def _snapshot(factory: sessionmaker[Session], dsns: list[str]) -> list[tuple[Any, ...]]:
    with factory() as session:
        rows = session.execute(select(Device).where(Device.dsn.in_(dsns)).order_by(Device.dsn)).scalars()
        return [
            (d.dsn, d.status, d.mac, d.hwsig, d.manuf_model, d.owner_oem_id, d.last_job_failed) for d in rows
        ]


def _outcomes(factory: sessionmaker[Session], action_id: int) -> dict[int, tuple[Any, ...]]:
    with factory() as session:
        lines = session.scalars(select(ActionLine).where(ActionLine.action_id == action_id))
        return {
            line.line_no: (line.dsn, line.outcome, line.error_code, line.message, line.changes, line.model)
            for line in lines
        }


def _work_all(factory: sessionmaker[Session], settings: Settings) -> None:
    runner = ActionRunner(factory, settings)
    while runner.run_once():
        pass


def _compare(
    world: World,
    factory: sessionmaker[Session],
    settings: Settings,
    user: str,
    upload_type: str,
    content: bytes,
    dsns: list[str],
) -> tuple[dict[int, tuple[Any, ...]], dict[int, tuple[Any, ...]]]:
    before = _snapshot(factory, dsns)
    validated = upload(world, user, content, type_=upload_type, validate=True)
    _work_all(factory, settings)
    assert _snapshot(factory, dsns) == before, "validate changed a device"
    with factory() as session:
        assert session.scalars(select(ValidateOverlay)).first() is None, "the overlay outlived its validate"
    submitted = upload(world, user, content, type_=upload_type)
    _work_all(factory, settings)
    shown = action(world, user, validated["id"])["factory_action"]["progress"]
    done = action(world, user, submitted["id"])["factory_action"]["progress"]
    assert shown.pop("would_apply") == done.pop("applied")
    assert shown == done
    return _outcomes(factory, validated["id"]), _outcomes(factory, submitted["id"])


@pytest.fixture
def small_batches(settings: Settings) -> Settings:
    return settings.model_copy(update={"action_batch_size": 3})


def test_a_mac_repeated_across_batches_fails_in_validate_as_in_submit(
    world: World, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """The reported case: 1000 lines, 500 a batch, lines 1, 8, 108, ..., 908 share a mac."""
    dsns = [f"AC000W{n:09d}" for n in range(1, 1001)]
    oem = world.oem_ids["modules"]
    _insert(
        session_factory,
        [{"dsn": d, "model": "AY001MTP1", "status": "reserved", "reserved_by_oem_id": oem} for d in dsns],
    )
    shared = {1, 8, *range(108, 1000, 100)}
    macs = {n: "0000000000aa" if n in shared else f"{n + 0x100000:012x}" for n in range(1, 1001)}
    lines = [f"{HEAD},label,0,AY001MTP1,{dsn},{macs[n]},m,s,sig-{n}," for n, dsn in enumerate(dsns, start=1)]
    content = ("\n".join(lines) + "\n").encode()
    validated, submitted = _compare(world, session_factory, settings, "mm", "manufacture", content, dsns)
    assert validated == submitted
    failed = sorted(n for n, line in submitted.items() if line[1] == "invalid")
    assert failed == sorted(shared - {1})
    assert all(submitted[n][3].endswith("mac is already taken") for n in failed)


def _manufacture_file(example: int, draw_lines: list[tuple[int, int, int, str, int]]) -> Iterator[str]:
    for dsn_n, mac_n, sig_n, status, variant in draw_lines:
        if variant == 9:
            yield f"2,1,{dsn_n},nonsense"  # fits no layout
            continue
        dsn = f"AC000W{example * 100 + dsn_n:09d}"
        manuf_model = "WD101a" if variant < 6 else "WD101b"  # a repeat with another value: conflict
        yield f"{HEAD},{status},0,AY001MTP1,{dsn},{_mac(example, mac_n)},{manuf_model},p,h{example}-{sig_n},"


LINES = st.lists(
    st.tuples(
        st.integers(0, 9),  # DSN: 0-5 reachable, 6-7 another OEM's, 8-9 unknown
        st.integers(0, 7),  # mac
        st.integers(0, 7),  # hwsig
        st.sampled_from(["label", "label", "config", "pass"]),
        st.integers(0, 9),  # value variant
    ),
    min_size=1,
    max_size=24,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=LINES, held=st.sets(st.integers(0, 7), max_size=3))
def test_manufacture_validate_equals_submit(
    world: World,
    session_factory: sessionmaker[Session],
    small_batches: Settings,
    lines: list[tuple[int, int, int, str, int]],
    held: set[int],
) -> None:
    example = next(_EXAMPLES)
    mine, theirs = world.oem_ids["modules"], world.oem_ids["modules2"]
    dsns = [f"AC000W{example * 100 + n:09d}" for n in range(8)]
    rows = [
        {
            "dsn": dsn,
            "model": "AY001MTP1",
            "status": "reserved",
            "reserved_by_oem_id": mine if n < 6 else theirs,
        }
        for n, dsn in enumerate(dsns)
    ]
    # Some macs and hwsigs of the file are already held by a manufactured device.
    for n in held:
        rows[n].update(
            status="manufactured",
            mac=_mac(example, n),
            hwsig=f"h{example}-{n}",
            dom_at=_DOM,
            manuf_model="WD101a",
            manuf_sn="p",
            manufactured_at=_DOM,
        )
    _insert(session_factory, rows)
    content = ("\n".join(_manufacture_file(example, lines)) + "\n").encode()
    validated, submitted = _compare(world, session_factory, small_batches, "mm", "manufacture", content, dsns)
    assert validated == submitted


GATEWAY_LINES = st.lists(
    st.tuples(
        st.integers(0, 5),  # DSN: 0-3 reachable, 4 another OEM's, 5 unknown
        st.integers(0, 5),  # mac
        st.sampled_from(["", "", "sig-a", "sig-b"]),  # empty: mac-<mac>
        st.sampled_from(["config", "assign", "label"]),
        st.sampled_from(["zbgw", "zbgw", "other"]),  # oem_model
    ),
    min_size=1,
    max_size=20,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=GATEWAY_LINES)
def test_white_box_provision_validate_equals_submit(
    world: World,
    session_factory: sessionmaker[Session],
    small_batches: Settings,
    lines: list[tuple[int, int, str, str, str]],
) -> None:
    """Gateway lines with an empty hwsig take mac-<mac>: a default that later lines meet too."""
    example = next(_EXAMPLES)
    mine, theirs = world.oem_ids["gateways"], world.oem_ids["gateways2"]
    dsns = [f"AC000W{example * 100 + n:09d}" for n in range(5)]
    _insert(
        session_factory,
        [
            {
                "dsn": dsn,
                "model": "AY001RTA",
                "status": "reserved",
                "reserved_by_oem_id": mine if n < 4 else theirs,
            }
            for n, dsn in enumerate(dsns)
        ],
    )
    content = "".join(
        f"3,1,2014/06/02 16:21:10 UTC,{status},0,AY001RTA,AC000W{example * 100 + dsn_n:09d},"
        f"{_mac(example, mac_n)},linux,,{hwsig},,{mine},{oem_model},,,devd 1.0\n"
        for dsn_n, mac_n, hwsig, status, oem_model in lines
    ).encode()
    validated, submitted = _compare(world, session_factory, small_batches, "som", "provision", content, dsns)
    assert validated == submitted
