"""The dashboard in a real Chromium, walked as an operator would, against a real server
whose background workers work the uploads. Every page is saved to docs/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.dashboard.conftest import WorkingServer, screenshot
from tests.world import PASSWORD, World

pytestmark = pytest.mark.browser

HEAD = "2,1318462302,2016/11/24 10:34:23 UTC"


def tab(page: Any, name: str) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=name).click()


def sign_in(page: Any, email: str, *, shot: str | None = None) -> None:
    from playwright.sync_api import expect

    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/sign_in"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Factory Actions")).to_be_visible()


def reserve(page: Any, model: str, count: int, *, shots: bool = False) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Reserve DSNs").click()
    dialog = page.locator("#reserve-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Model").select_option(model)
    dialog.get_by_label("Quantity").fill(str(count))
    if shots:
        screenshot(page, "reserve-dialog")

    def while_running(route: Any) -> None:
        # The request is held here: the list shows the reservation as running meanwhile.
        expect(page.get_by_test_id("running-row")).to_be_visible()
        expect(page.locator("#page-banners")).to_contain_text(f"Reserving {count} {model} DSNs")
        if shots:
            screenshot(page, "reserve-running")
        route.continue_()

    page.route("**/dashboard/actions/reserve", while_running)
    dialog.get_by_role("button", name="Reserve", exact=True).click()
    expect(page.locator("[data-done]")).to_contain_text(f"Reserved {count} {model} DSN")
    expect(page.get_by_test_id("done-range")).to_contain_text("AC000W" if count == 1 else " … ")
    page.unroute("**/dashboard/actions/reserve")


def upload(page: Any, kind: str, path: Path, *, validate: bool, version: str | None = None) -> Any:
    from playwright.sync_api import expect

    dialog = page.locator(f"#upload-{kind}-dialog")
    if not dialog.is_visible():
        page.get_by_role("button", name=f"Upload {kind} file").click()
    expect(dialog).to_be_visible()
    dialog.get_by_label("Factory log or CSV file").set_input_files(str(path))
    if version is not None:
        dialog.get_by_label("OEM host version").fill(version)
    dialog.get_by_test_id("validate" if validate else "submit").click()
    expect(dialog.get_by_test_id("result-banner")).to_be_visible()
    return dialog


def test_module_maker_reserves_uploads_and_searches(
    working_server: WorkingServer,
    world: World,
    pool: Callable[[int], None],
    new_page: Callable[..., Any],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    pool(5)
    page = new_page(working_server.url)

    # Sign-in: a wrong password first.
    page.goto("/dashboard/sign_in")
    page.get_by_label("Email").fill(world.emails["mm"])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
    screenshot(page, "sign-in-failed")
    page.context.clear_cookies()
    sign_in(page, world.emails["mm"], shot="sign-in")

    # What a module maker may not do is not offered.
    expect(page.get_by_role("button", name="Upload provision file")).to_have_count(0)

    # RESERVE DSNS: 5 of a black-box model, then the encrypted bundle.
    options = page.locator("#reserve-model option")
    expect(options).to_have_text([re.compile("^AY001MTC2"), re.compile("^AY001MTP1")])
    reserve(page, "AY001MTP1", 5, shots=True)
    screenshot(page, "reserve-done")
    with page.expect_download() as download_info:
        page.get_by_test_id("done-file-xml").click()
    download = download_info.value
    assert download.suggested_filename.endswith("-dsns.zip.p7m")
    assert Path(download.path()).stat().st_size > 500

    # The devices of the reservation, in the DSN View.
    page.locator("tr[data-action] [data-testid=action-count]").first.click()
    expect(page.get_by_role("heading", name=re.compile("Devices of action #"))).to_be_visible()
    rows = page.locator("#devices-table tbody tr[data-dsn]")
    expect(rows).to_have_count(5)
    dsns = [rows.nth(i).get_attribute("data-dsn") for i in range(5)]

    # UPLOAD MANUFACTURE FILE: one bad line; VALIDATE, then SUBMIT.
    lines = [
        f"{HEAD},label,0,AY001MTP1,{dsn},00000000000{i},WD101a,p{i},sig-{i}," for i, dsn in enumerate(dsns, 1)
    ]
    lines[2] = f"{HEAD},label,0,AY001MTP1,{dsns[2]},not-a-mac,WD101a,p3,sig-3,"
    log = tmp_path / "line-7.log"
    log.write_text("# line 7, shift 2\n" + "\n".join(lines) + "\n")
    tab(page, "Factory Actions")
    dialog = page.locator("#upload-manufacture-dialog")
    page.get_by_role("button", name="Upload manufacture file").click()
    screenshot(page, "upload-dialog")
    upload(page, "manufacture", log, validate=True)
    expect(dialog.get_by_test_id("result-banner")).to_contain_text("Validation found 1 line that would fail")
    # A failed validate opens on its problems; "All" shows every line, in the dialog.
    expect(dialog.locator("tr.outcome-invalid")).to_contain_text("mac not-a-mac is not 12 hex digits")
    expect(dialog.locator("tr.outcome-applied")).to_have_count(0)
    dialog.get_by_test_id("lines-all").click()
    expect(dialog.locator("tr.outcome-applied").first).to_contain_text("mac: (none) → 000000000001")
    expect(dialog).to_be_visible()
    screenshot(page, "upload-validated")
    upload(page, "manufacture", log, validate=False)
    banner = dialog.get_by_test_id("result-banner")
    expect(banner).to_contain_text("1 line failed; 4 applied")
    screenshot(page, "upload-submitted")
    with page.expect_download() as failed_info:
        dialog.get_by_test_id("file-failed").click()
    assert Path(failed_info.value.path()).read_text() == lines[2] + "\n"
    page.keyboard.press("Escape")  # closing the dialog refreshes the list
    expect(page.locator("tr[data-action]")).to_have_count(3)
    screenshot(page, "actions")

    # The submitted upload's own page: a click anywhere on its row opens it.
    page.locator("tr[data-action]").first.locator("td").nth(2).click()
    expect(page.get_by_test_id("result-banner")).to_contain_text("1 line failed")
    screenshot(page, "action-detail")

    # Search the actions.
    tab(page, "Factory Actions")
    page.get_by_role("button", name="Search").click()
    search = page.locator("#search-dialog")
    search.get_by_label("Type").select_option("manufacture")
    search.get_by_label("Created by").fill(world.emails["mm"])
    screenshot(page, "actions-search")
    search.get_by_role("button", name="Search").click()
    expect(page.locator("tr[data-action]")).to_have_count(1)
    expect(page.locator(".filter-summary")).to_contain_text("of type manufacture")

    # DSN View: wildcard, then a date range.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tab(page, "DSN View")
    page.get_by_label("DSN", exact=True).fill(dsns[0][:-1] + "?")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#devices-table tbody tr[data-dsn]")).to_have_count(min(5, 9))
    page.get_by_label("DSN", exact=True).fill("AC000W*")
    page.get_by_label("Status").select_option("manufactured")
    # From inclusive, before exclusive, to the minute: as the API's reserved_after/_before.
    page.get_by_label("Reserved from (inclusive)").fill((now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Reserved before (exclusive)").fill(
        (now + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    )
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#devices-table tbody tr[data-dsn]")).to_have_count(4)
    expect(page.get_by_test_id("match-count")).to_have_text("4 devices match")
    screenshot(page, "dsn-view")
    page.get_by_label("Reserved from (inclusive)").fill((now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Reserved before (exclusive)").fill(
        (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    )
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#devices-table tr.empty")).to_contain_text("No device matches")
    page.get_by_role("link", name="Clear").click()
    page.locator("summary", has_text="More filters").click()
    screenshot(page, "dsn-view-more-filters")

    # A device, and its jobs; no FACTORY RESET for a module maker.
    page.get_by_role("link", name=dsns[0]).click()
    expect(page.get_by_role("heading", name=dsns[0])).to_be_visible()
    expect(page.get_by_text("000000000001")).to_be_visible()
    expect(page.get_by_role("button", name="Factory reset")).to_have_count(0)
    screenshot(page, "device")
    page.get_by_role("link", name="View jobs").click()
    jobs = page.locator("#jobs-table tbody tr")
    expect(jobs).to_have_count(2)
    expect(jobs.nth(1)).to_contain_text("manufacture")
    screenshot(page, "jobs")

    # A narrow window: the DSN View stacks, its table scrolls sideways.
    narrow = new_page(working_server.url, {"width": 420, "height": 860})
    sign_in(narrow, world.emails["mm"])
    narrow.goto("/dashboard/devices")
    expect(narrow.locator("#devices-table tbody tr[data-dsn]")).to_have_count(5)
    wrap = narrow.locator(".table-wrap")
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 420
    screenshot(narrow, "dsn-view-narrow", full_page=True)
    narrow.goto("/dashboard")
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 420
    screenshot(narrow, "actions-narrow")


def test_oem_admin_provisions_a_gateway_and_factory_resets_it(
    working_server: WorkingServer,
    world: World,
    pool: Callable[[int], None],
    new_page: Callable[..., Any],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    pool(1)
    page = new_page(working_server.url)
    sign_in(page, world.emails["gateway_admin"])
    expect(page.get_by_role("button", name="Upload manufacture file")).to_have_count(0)
    expect(page.locator("#reserve-model option")).to_have_text([re.compile("^AY001RTA")])
    reserve(page, "AY001RTA", 1)
    dsn = page.locator("[data-done]").get_attribute("data-done")
    assert dsn
    page.get_by_role("link", name="View devices").click()
    dsn = page.locator("#devices-table tbody tr[data-dsn]").first.get_attribute("data-dsn")
    tab(page, "Factory Actions")

    csv = tmp_path / "gateways.csv"
    csv.write_text(
        "dsn,model,oem_model,mac,manuf_model,module_sw_version,dom_at\n"
        f"{dsn},AY001RTA,zbgw,123456789abc,linux,devd 1.0,2014/06/02 16:21:10 UTC\n"
    )
    # A longer file, validated: its progress is followed while the worker goes through it.
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(
        "dsn,model,oem_model,oem_host_version\n"
        + "".join(f"AC000W9{n:08d},AY001RTA,zbgw,1.0\n" for n in range(6000))
    )
    page.get_by_role("button", name="Upload provision file").click()
    dialog = page.locator("#upload-provision-dialog")
    dialog.get_by_label("Factory log or CSV file").set_input_files(str(unknown))
    dialog.get_by_test_id("validate").click()
    expect(dialog.get_by_test_id("progress")).to_be_visible()
    running = dialog.locator("[data-status=running]")
    expect(running).to_contain_text(re.compile(r"Line [1-9]\d* of 6001"))
    screenshot(page, "upload-progress")
    banner = dialog.get_by_test_id("result-banner")
    expect(banner).to_contain_text("Validation found 6000 lines that would fail", timeout=60_000)

    dialog = upload(page, "provision", csv, validate=False, version="1.0")
    expect(dialog.get_by_test_id("result-banner")).to_contain_text("applied: 1 applied")
    screenshot(page, "upload-provision")
    with page.expect_navigation():
        page.keyboard.press("Escape")  # closing the dialog refreshes the list

    page.goto(f"/dashboard/devices/{dsn}")
    expect(page.get_by_text("mac-123456789abc")).to_be_visible()
    page.get_by_role("button", name="Factory reset").click()
    confirm = page.locator("#reset-dialog")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    screenshot(page, "factory-reset-dialog")
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    page.get_by_role("button", name="Factory reset").click()
    confirm.get_by_test_id("confirm-reset").click()
    expect(page.get_by_test_id("reset-banner")).to_be_visible()
    steps = page.locator("#reset-steps tbody tr")
    expect(steps).to_have_count(4)
    for i, name in enumerate(("Reset Template", "Reset Device", "Unregister Device", "Reset Datapoints")):
        expect(steps.nth(i)).to_contain_text(name)
        expect(steps.nth(i)).to_contain_text("success")
    screenshot(page, "factory-reset")
    page.get_by_role("link", name="View jobs").click()
    expect(page.locator("#jobs-table tbody tr")).to_have_count(6)  # reserve, provision, 4 reset steps


def test_other_roles_see_only_their_controls_and_foreign_urls_are_404(
    working_server: WorkingServer,
    world: World,
    pool: Callable[[int], None],
    new_page: Callable[..., Any],
) -> None:
    from playwright.sync_api import expect

    pool(1)
    reserved = world.client.post(
        "/devicefactory/v1/devices/reserve",
        json={"model": "AY001MTP1", "count": 1},
        headers=world.headers("mm"),
    )
    dsn = reserved.json()[0]["device"]["dsn"]
    action_id = reserved.headers["X-Factory-Action"]

    page = new_page(working_server.url)
    sign_in(page, world.emails["mom"])
    expect(page.get_by_role("button", name="Reserve DSNs")).to_have_count(0)
    expect(page.get_by_role("button", name="Upload manufacture file")).to_have_count(0)
    expect(page.get_by_role("button", name="Upload provision file")).to_be_visible()
    screenshot(page, "actions-product-oem")
    page.get_by_role("button", name="Upload provision file").click()
    expect(page.get_by_label("OEM host version")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#upload-provision-dialog")).to_be_hidden()

    for url in (f"/dashboard/devices/{dsn}", f"/dashboard/actions/{action_id}"):
        response = page.goto(url)
        assert response.status == 404
        expect(page.get_by_role("alert")).to_contain_text("AFS-404")
    screenshot(page, "not-found")

    # Keyboard: the tabs and the toolbar are reachable with Tab, and show a focus ring.
    page.goto("/dashboard")
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Factory Actions"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


AXE = Path(__file__).with_name("axe.min.js")  # axe-core (MPL-2.0), vendored: no network in CI
SERIOUS = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}"""


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    page.wait_for_load_state("load")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    found: list[str] = page.evaluate(SERIOUS)
    return found


def watch_console(page: Any) -> list[str]:
    """Console errors and uncaught exceptions of the page (CSP violations show up here too)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_rows_layout_accessibility_and_console(
    working_server: WorkingServer,
    world: World,
    pool: Callable[[int], None],
    new_page: Callable[..., Any],
) -> None:
    from playwright.sync_api import expect

    pool(3)
    reserved = world.client.post(
        "/devicefactory/v1/devices/reserve",
        json={"model": "AY001MTP1", "count": 3},
        headers=world.headers("mm"),
    )
    assert reserved.status_code == 200, reserved.text
    dsn = reserved.json()[0]["device"]["dsn"]
    action_id = reserved.headers["X-Factory-Action"]

    page = new_page(working_server.url, {"width": 1366, "height": 768})
    errors = watch_console(page)
    page.goto("/dashboard")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_have_count(0)  # a first visit: no "session has ended"
    assert serious_violations(page) == [], "sign-in page"
    sign_in(page, world.emails["mm"])

    # The whole row opens the action; so does its first cell's link, from the keyboard.
    row = page.locator(f"tr[data-action='{action_id}']")
    row.locator("td").nth(4).click()
    expect(page).to_have_url(re.compile(rf"/dashboard/actions/{action_id}$"))
    expect(page.get_by_test_id("reserved-range")).to_contain_text(f"{dsn} … ")
    assert serious_violations(page) == [], "action page"
    page.go_back()
    page.locator(f"tr[data-action='{action_id}'] [data-testid=action-link]").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/dashboard/actions/{action_id}$"))
    page.go_back()
    assert serious_violations(page) == [], "actions list"

    for url, name in (
        ("/dashboard/devices", "DSN View"),
        (f"/dashboard/devices/{dsn}", "device page"),
        (f"/dashboard/devices/{dsn}/jobs", "jobs page"),
    ):
        page.goto(url)
        assert serious_violations(page) == [], name
    expect(page.get_by_test_id("related-dsn")).to_have_count(2)
    page.get_by_test_id("related-dsn").first.focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring

    # 800 px and 1920 px: the actions table fits its container (nothing clipped or hidden),
    # the page itself never scrolls sideways; the wide DSN table scrolls inside its own box.
    for width in (800, 1920):
        page.set_viewport_size({"width": width, "height": 768})
        page.goto("/dashboard")
        wrap = page.locator(".table-wrap").first
        box = wrap.bounding_box()
        assert box is not None
        cells = page.locator("#actions-table tr > *")
        for i in range(cells.count()):
            cell = cells.nth(i).bounding_box()
            assert cell is not None
            where = (width, cells.nth(i).inner_text())
            assert cell["x"] >= box["x"] - 1, where
            assert cell["x"] + cell["width"] <= box["x"] + box["width"] + 1, where
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, f"actions-{width}")
        page.goto("/dashboard/devices")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, f"dsn-view-{width}")
    assert errors == []

    # The check itself works: an input without a label is a critical finding.
    page.evaluate("document.querySelector('main').append(document.createElement('input'))")
    assert any(found.startswith("label (critical)") for found in serious_violations(page))


def test_audit_funnel_anomalies_export_and_viewer_pages(
    working_server: WorkingServer,
    world: World,
    pool: Callable[[int], None],
    new_page: Callable[..., Any],
) -> None:
    """The pages of the audit log, the lifecycle funnel, the anomalies, the DSN View's export
    and the read-only viewer, each as the role that uses it, with no console error and no
    serious accessibility finding; their pictures illustrate the user guide."""
    from playwright.sync_api import expect
    from tests import api

    pool(4)
    dsns = api.reserve(world, count=4)
    for n, dsn in enumerate(dsns[:2], start=1):
        assert (
            api.manufacture(world, dsn, {**api.manufacture_body(n), "wifi_setup_key": f"KEY{n}"}).status_code
            == 200
        )
    # The third module claims the first one's mac: refused, and an anomaly with its evidence.
    assert api.manufacture(world, dsns[2], {**api.manufacture_body(1), "hwsig": "sig-x"}).status_code == 422
    viewer_email = "viewer@example.com"
    created = world.client.post(
        f"{api.V1}/admin/users",
        json={"user": {"email": viewer_email, "password": PASSWORD, "role": "OEM::Viewer"}},
        headers=world.headers("mm_admin"),
    )
    assert created.status_code == 201, created.text

    page = new_page(working_server.url)
    errors = watch_console(page)
    sign_in(page, world.emails["mm_admin"])
    tab(page, "Audit Log")
    expect(page.get_by_role("heading", name="Audit Log")).to_be_visible()
    expect(page.locator("main")).to_contain_text("devices.manufacture")
    assert serious_violations(page) == [], "audit log"
    screenshot(page, "audit-log")
    tab(page, "Funnel")
    expect(page.get_by_role("heading", name="Lifecycle funnel")).to_be_visible()
    assert serious_violations(page) == [], "funnel"
    screenshot(page, "funnel")
    tab(page, "Anomalies")
    expect(page.get_by_role("heading", name="Anomalies")).to_be_visible()
    expect(page.locator("main")).to_contain_text(dsns[2])  # the refused claim, as evidence
    assert serious_violations(page) == [], "anomalies"
    screenshot(page, "anomalies")
    tab(page, "DSN View")
    with page.expect_download() as download:
        page.get_by_test_id("devices-csv").click()
    exported = Path(download.value.path()).read_text()
    assert all(dsn in exported for dsn in dsns)
    assert "KEY1" in exported  # an admin sees the secret
    assert errors == []

    viewer = new_page(working_server.url)
    viewer_errors = watch_console(viewer)
    sign_in(viewer, viewer_email)
    expect(viewer.get_by_role("button", name="Reserve DSNs")).to_have_count(0)  # changes nothing
    tab(viewer, "DSN View")
    viewer.goto(f"/dashboard/devices/{dsns[0]}")
    expect(viewer.locator("main")).to_contain_text("****")
    expect(viewer.locator("main")).not_to_contain_text("KEY1")
    assert serious_violations(viewer) == [], "viewer's device page"
    screenshot(viewer, "viewer-device")
    assert viewer_errors == []
