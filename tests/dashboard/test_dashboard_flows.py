"""The dashboard's flows through TestClient: reserve, uploads, DSN View, jobs, factory reset."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from tests.api import WHITE_BOX, log_line, manufacture, manufacture_body, ok, provision, reservation, reserve
from tests.conftest import FrozenClock, day
from tests.dashboard.conftest import Dash
from tests.world import World


def rows(page: str, marker: str) -> list[str]:
    return re.findall(rf'<tr {marker}="([^"]+)"', page)


def test_reserve_then_download_the_bundle_and_files(
    dash: Callable[[str], Dash], pool: Callable[[int], None]
) -> None:
    pool(5)
    client = dash("mm")
    response = client.post("/dashboard/actions/reserve", {"model": "AY001MTP1", "count": "5"})
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.fullmatch(r"/dashboard\?done=\d+", location)
    action_id = location.rsplit("=", 1)[1]
    page = client.get(location).text
    assert "Reserved 5 AY001MTP1 DSNs" in page
    assert f'href="/dashboard/actions/{action_id}/files/xml"' in page
    assert rows(page, "data-action") == [action_id]
    bundle = client.get(f"/dashboard/actions/{action_id}/files/xml")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "application/pkcs7-mime"
    assert (
        bundle.headers["content-disposition"]
        == f'attachment; filename="action-{action_id}-reserve-dsns.zip.p7m"'
    )
    assert len(bundle.content) > 500
    csv = client.get(f"/dashboard/actions/{action_id}/files/csv").text.splitlines()
    assert csv[0] == "dsn,model,status,result,error_code"
    assert len(csv) == 6
    devices = client.get(f"/dashboard/devices?action_id={action_id}").text
    assert len(rows(devices, "data-dsn")) == 5
    assert f"Devices of action #{action_id}" in devices


def test_platform_admin_reserves_for_an_oem(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None]
) -> None:
    pool(2)
    client = dash("ayla")
    oem = world.oem_ids["gateways"]
    response = client.post("/dashboard/actions/reserve", {"model": "AY001RTA", "count": "2", "oem_id": oem})
    assert response.status_code == 303
    action_id = response.headers["location"].rsplit("=", 1)[1]
    # The gateways' admin sees the reservation as its own.
    page = dash("gateway_admin").get(f"/dashboard/actions/{action_id}")
    assert page.status_code == 200
    assert "Reserved 2 AY001RTA DSNs" in page.text


def test_upload_validate_then_submit(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    pool(3)
    dsns = reserve(world, "mm", "AY001MTP1", 3)
    lines = [
        log_line(dsns[0], "000000000001", "sig-1"),
        log_line(dsns[1], "zz", "sig-2"),  # invalid mac
        log_line(dsns[2], "000000000003", "sig-3"),
    ]
    content = ("\n".join(lines) + "\n").encode()
    client = dash("mm")

    def upload(validate: bool) -> str:
        response = client.post(
            "/dashboard/actions/upload",
            {"type": "manufacture", "validate_only": "true" if validate else "false"},
            files={"file": ("shift-2.log", content, "text/plain")},
        )
        assert response.status_code == 303, response.text
        location: str = response.headers["location"]
        assert re.fullmatch(r"/dashboard/actions/\d+", location)
        return location

    validated = upload(True)
    live = client.get(f"{validated}/live").text
    assert 'data-final="false"' in live
    assert "Waiting for a worker" in live
    assert "<html" not in live  # a fragment, for the page's script
    assert run_actions() == 1
    page = client.get(validated).text
    assert "Validate manufacture" in page
    assert "Validation found 1 line that would fail. Nothing was changed." in page
    assert 'data-final="true"' in page
    assert re.search(r'<tr class="outcome-invalid" data-line="2">', page)
    assert "mac zz is not 12 hex digits" in page
    # A failed validate opens on its problems (in the dialog's panel too); "All" shows the rest.
    assert rows(page, 'class="outcome-[a-z]+" data-line') == ["2"]
    assert re.search(r'aria-current="true" data-testid="lines-problems">Problems only \(1\)', page)
    assert rows(client.get(f"{validated}/live").text, 'class="outcome-[a-z]+" data-line') == ["2"]
    every = client.get(f"{validated}?lines=all").text
    assert rows(every, 'class="outcome-[a-z]+" data-line') == ["1", "2", "3"]
    assert "mac: (none) → 000000000001" in every
    device = client.get(f"/dashboard/devices/{dsns[0]}").text
    assert "000000000001" not in device  # validation applied nothing

    submitted = upload(False)
    run_actions()
    page = client.get(f"{submitted}?lines=all").text
    assert "1 line failed; 2 applied, 0 identical" in page
    assert rows(page, 'class="outcome-applied" data-line') == ["1", "3"]
    problems = client.get(f"{submitted}?lines=problems").text
    assert rows(problems, 'class="outcome-invalid" data-line') == ["2"]
    assert "outcome-applied" not in problems
    action_id = submitted.rsplit("/", 1)[1]
    failed = client.get(f"/dashboard/actions/{action_id}/files/failed")
    assert failed.text == lines[1] + "\n"
    log = client.get(f"/dashboard/actions/{action_id}/files/log").text
    assert log.startswith("2,")
    assert "000000000001" in client.get(f"/dashboard/devices/{dsns[0]}").text
    listing = client.get("/dashboard").text
    assert rows(listing, "data-action")[:2] == [action_id, validated.rsplit("/", 1)[1]]


def test_provision_upload_with_an_oem_host_version(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA", 1)
    client = dash("som")
    csv = (
        "dsn,model,oem_model,mac,manuf_model,module_sw_version,dom_at\n"
        f"{dsn},AY001RTA,zbgw,123456789abc,linux,devd 1.0,2014/06/02 16:21:10 UTC\n"
    )
    response = client.post(
        "/dashboard/actions/upload",
        {"type": "provision", "validate_only": "false", "oem_host_version": "3.1"},
        files={"file": ("gw.csv", csv.encode(), "text/csv")},
    )
    assert response.status_code == 303
    run_actions()
    page = client.get(response.headers["location"]).text
    assert "gw.csv applied: 1 applied" in page
    assert "OEM host version" in page
    device = client.get(f"/dashboard/devices/{dsn}").text
    assert "3.1" in device
    assert "mac-123456789abc" in device


def test_dsn_view_search_fields_and_paging(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], clock: FrozenClock
) -> None:
    pool(30)
    clock.start_timeline()
    reserved = reservation(world, "mm", "AY001MTP1", 27)
    first_action, first = reserved.action_id, reserved.dsns
    clock.advance(days=3)
    world._tokens.clear()  # the API tokens of three days ago have expired
    later = reserve(world, "mm", "AY001MTC2", 3)
    ok(manufacture(world, first[0], manufacture_body(1), "mm"))
    client = dash("mm")

    everything = client.get("/dashboard/devices").text
    assert rows(everything, "data-dsn") == first[:25]
    next_link = re.search(r'href="(/dashboard/devices\?[^"]*cursor=[^"]+)"', everything)
    assert next_link
    second = client.get(next_link.group(1).replace("&amp;", "&")).text
    assert rows(second, "data-dsn") == first[25:] + later
    assert "First page" in second

    assert rows(client.get(f"/dashboard/devices?dsn={first[0][:-1]}*").text, "data-dsn") == first[:9]
    assert rows(client.get(f"/dashboard/devices?dsn={first[1][:-1]}?").text, "data-dsn") == first[:9]
    assert rows(client.get(f"/dashboard/devices?dsn={later[0]}").text, "data-dsn") == [later[0]]
    # A date range means what it means to the API: from inclusive, before exclusive.
    assert rows(client.get(f"/dashboard/devices?reserved_after={day(3)}&limit=100").text, "data-dsn") == later
    same_day = client.get(f"/dashboard/devices?reserved_after={day(0)}&reserved_before={day(0)}&limit=100")
    assert rows(same_day.text, "data-dsn") == []
    on_day_0 = client.get(f"/dashboard/devices?reserved_after={day(0)}&reserved_before={day(1)}&limit=100")
    assert rows(on_day_0.text, "data-dsn") == first
    assert f'value="{day(0)}T00:00"' in on_day_0.text  # the form keeps its values, as date-times
    assert "27 devices match" in on_day_0.text
    assert rows(client.get("/dashboard/devices?status=manufactured").text, "data-dsn") == [first[0]]
    assert rows(client.get("/dashboard/devices?mac=00:00:00:00:00:01").text, "data-dsn") == [first[0]]
    assert rows(client.get("/dashboard/devices?model=AY001MTC2").text, "data-dsn") == later
    assert rows(client.get("/dashboard/devices?manuf_model=WD101a").text, "data-dsn") == [first[0]]
    assert rows(client.get(f"/dashboard/devices?action_id={first_action}&limit=50").text, "data-dsn") == first
    assert rows(
        client.get(f"/dashboard/devices?hwsig=sig-1&manufactured_after={day(3)}").text, "data-dsn"
    ) == [first[0]]
    more = client.get("/dashboard/devices?odm=nobody").text
    assert rows(more, "data-dsn") == []
    assert "No device matches this search." in more
    assert re.search(r'<details class="more-filters"\s+open>', more)


def test_device_page_jobs_and_factory_reset(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None]
) -> None:
    pool(1)
    (dsn,) = reserve(world, "gateway_admin", "AY001RTA", 1)
    ok(provision(world, dsn, WHITE_BOX, "gateway_admin"))
    client = dash("gateway_admin")
    page = client.get(f"/dashboard/devices/{dsn}").text
    for value in ("zbgw", "123456789abc", "mac-123456789abc", "linux", "devd 1.0", "2014-06-02 16:21:10"):
        assert value in page
    assert "BEGIN RSA PUBLIC KEY" in page
    reset = client.post(f"/dashboard/devices/{dsn}/factory_reset")
    assert reset.status_code == 200
    steps = re.findall(r'<tr><th scope="row">([^<]+)</th><td><span class="pill pill-success">', reset.text)
    assert steps == ["Reset Template", "Reset Device", "Unregister Device", "Reset Datapoints"]
    jobs = client.get(f"/dashboard/devices/{dsn}/jobs").text
    assert re.findall(r'<tr data-operation="([^"]+)">', jobs) == [
        "reserve",
        "provision",
        "factory_reset:reset_template",
        "factory_reset:reset_device",
        "factory_reset:unregister_device",
        "factory_reset:reset_datapoints",
    ]


def test_action_list_search_and_paging(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], clock: FrozenClock
) -> None:
    pool(27)
    clock.start_timeline()
    ids = []
    for _ in range(26):
        ids.append(str(reservation(world, "mm", "AY001MTP1", 1).action_id))
        clock.advance(minutes=10)
    ids.append(str(reservation(world, "mm_admin", "AY001MTC2", 1).action_id))
    client = dash("mm")
    newest_first = list(reversed(ids))
    page = client.get("/dashboard").text
    assert rows(page, "data-action") == newest_first[:25]
    older = re.search(r'href="(/dashboard\?[^"]*cursor=\d+)" rel="next"', page)
    assert older
    assert rows(client.get(older.group(1)).text, "data-action") == newest_first[25:]
    by_admin = client.get("/dashboard?created_by=mm_admin@example.com").text
    assert rows(by_admin, "data-action") == [ids[-1]]
    assert "created by <strong>mm_admin@example.com</strong>" in by_admin
    window = client.get(f"/dashboard?from={day(0)}T09:20&to={day(0)}T09:35&type=reserve&status=success").text
    assert rows(window, "data-action") == [ids[3], ids[2]]
    assert rows(client.get("/dashboard?type=manufacture").text, "data-action") == []


# --- what a new user found (first visit, rows, OEM names, dates, counts, related DSNs) ---------


def test_a_first_visit_gets_the_plain_sign_in_page(dash: Callable[[str], Dash]) -> None:
    client = dash("mm").client
    client.cookies.clear()
    first = client.get("/dashboard")
    assert first.url.path == "/dashboard/sign_in"
    assert "Your session has ended" not in first.text
    assert "<h1>Sign in</h1>" in first.text


def test_action_rows_open_the_action_and_show_totals_and_oem_names(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool(3)
    ids = [str(reservation(world, "mm", "AY001MTP1", 1).action_id) for _ in range(3)]
    client = dash("mm")
    page = client.get("/dashboard").text
    for action_id in ids:
        # The first cell holds a real link to the action; the row carries the same address.
        url = f"/dashboard/actions/{action_id}"
        assert re.search(
            rf'<tr data-action="{action_id}" data-href="{url}" class="row-clickable">'
            rf'\s*<td>\s*<a class="cell-main row-link" href="{url}"',
            page,
        )
    assert ">3 actions</span>" in page
    # Created by: the user and the OEM's name, its id in the tooltip.
    assert f'<span class="oem" title="OEM id {world.oem_ids["modules"]}">modules</span>' in page
    assert "Details" not in page
    from devicefactory.dashboard import actions_tab

    monkeypatch.setattr(actions_tab, "COUNT_BOUND", 2)
    assert "More than 2 actions" in client.get("/dashboard").text
    action = client.get(f"/dashboard/actions/{ids[0]}").text
    assert f'title="OEM id {world.oem_ids["modules"]}">modules</span>' in action


def test_the_search_summary_keeps_its_words_apart(dash: Callable[[str], Dash]) -> None:
    page = dash("mm").get(
        "/dashboard?type=reserve&created_by=mm@example.com&from=2026-12-03T00:00&to=2026-12-04T00:00"
    )
    summary = re.search(r'<p class="filter-summary">(.*?)<a ', page.text, re.S)
    assert summary
    text = " ".join(re.sub(r"<[^>]+>", "", summary.group(1)).split())
    assert text == (
        "Showing actions of type reserve created by mm@example.com "
        "from 2026-12-03 00:00 to 2026-12-04 00:00 (UTC)."
    )
    assert ">0 actions match</span>" in page.text


def test_reserve_banner_names_the_dsn_range(dash: Callable[[str], Dash], pool: Callable[[int], None]) -> None:
    pool(3)
    client = dash("mm")
    response = client.post("/dashboard/actions/reserve", {"model": "AY001MTP1", "count": "3"})
    page = client.get(response.headers["location"]).text
    action_id = response.headers["location"].rsplit("=", 1)[1]
    devices = rows(client.get(f"/dashboard/devices?action_id={action_id}").text, "data-dsn")
    banner = f'DSNs: <span class="mono" data-testid="done-range">{devices[0]} … {devices[2]}</span>'
    assert f"Reserved 3 AY001MTP1 {banner}" in page
    action = client.get(f"/dashboard/actions/{action_id}").text
    assert f"{devices[0]} … {devices[2]}</span>." in action


def test_device_pages_show_oem_names_and_related_dsns(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None]
) -> None:
    pool(4)
    dsns = reserve(world, "mm", "AY001MTP1", 3)
    (alone,) = reserve(world, "mm", "AY001MTP1", 1)
    client = dash("mm")
    modules = world.oem_ids["modules"]
    device = client.get(f"/dashboard/devices/{dsns[0]}").text
    assert (
        f'<dd data-testid="reserved-by-oem"><span class="oem" title="OEM id {modules}">modules</span>'
        in device
    )
    listing = client.get(f"/dashboard/devices?dsn={dsns[0]}").text
    assert f'<td><span class="oem" title="OEM id {modules}">modules</span></td>' in listing
    jobs = client.get(f"/dashboard/devices/{dsns[0]}/jobs").text
    related = re.findall(r'href="/dashboard/devices/([A-Z0-9]+)" data-testid="related-dsn"', jobs)
    assert related == dsns[1:]
    assert "No other DSN shares" in client.get(f"/dashboard/devices/{alone}/jobs").text


def test_related_dsns_are_bounded(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from devicefactory.devices import related

    pool(5)
    reserved = reservation(world, "mm", "AY001MTP1", 5)
    monkeypatch.setattr(related, "RELATED_DSNS", 2)
    jobs = dash("mm").get(f"/dashboard/devices/{reserved.dsns[0]}/jobs").text
    assert (
        re.findall(r'href="/dashboard/devices/([A-Z0-9]+)" data-testid="related-dsn"', jobs)
        == reserved.dsns[1:3]
    )
    assert f'href="/dashboard/devices?action_id={reserved.action_id}">All DSNs of action' in jobs


def test_dsn_view_dates_are_date_times_labelled_as_the_api_means_them(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool(3)
    reserve(world, "mm", "AY001MTP1", 3)
    client = dash("mm")
    page = client.get("/dashboard/devices").text
    assert 'name="reserved_after" type="datetime-local"' in page
    assert 'name="reserved_before" type="datetime-local"' in page
    assert re.search(
        r'for="f-reserved_after"><span class="visually-hidden">Reserved </span>from \(inclusive\)', page
    )
    assert re.search(
        r'for="f-reserved_before"><span class="visually-hidden">Reserved </span>before \(exclusive\)', page
    )
    assert "3 devices match" in page
    from devicefactory.dashboard import dsn_view

    monkeypatch.setattr(dsn_view, "COUNT_BOUND", 2)
    assert "More than 2 devices match" in client.get("/dashboard/devices").text
