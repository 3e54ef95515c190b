"""What each role is offered, the tenant wall (404 pages), and errors as readable HTML."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.api import WHITE_BOX, manufacture, manufacture_body, ok, provision, reservation, reserve
from tests.dashboard.conftest import Dash
from tests.world import USERS, World

# user -> (reserve, manufacture upload, provision upload)
TOOLBAR = {
    "ayla": (True, True, True),
    "mm": (True, True, False),
    "mm_admin": (True, True, False),
    "mm2": (True, True, False),
    "mom": (False, False, True),
    "product_admin": (True, False, True),
    "mom2": (False, False, True),
    "som": (True, False, True),
    "gateway_admin": (True, False, True),
    "som2": (True, False, True),
}
RESERVABLE = {
    "ayla": ["AY001MTC2", "AY001MTP1", "AY001RTA"],
    "mm": ["AY001MTC2", "AY001MTP1"],
    "som": ["AY001RTA"],
    "product_admin": ["AY001RTA"],
}


def test_the_table_covers_every_role() -> None:
    assert set(TOOLBAR) == set(USERS)


@pytest.mark.parametrize("user", sorted(TOOLBAR))
def test_the_toolbar_offers_only_what_the_role_may_do(dash: Callable[[str], Dash], user: str) -> None:
    page = dash(user).get("/dashboard").text
    may_reserve, may_manufacture, may_provision = TOOLBAR[user]
    assert ('data-dialog-open="reserve-dialog"' in page) is may_reserve
    assert ('id="reserve-dialog"' in page) is may_reserve
    assert ('data-dialog-open="upload-manufacture-dialog"' in page) is may_manufacture
    assert ('id="upload-manufacture-dialog"' in page) is may_manufacture
    assert ('data-dialog-open="upload-provision-dialog"' in page) is may_provision
    assert ('name="oem_host_version"' in page) is may_provision
    assert 'data-dialog-open="search-dialog"' in page  # everyone may search
    assert ('id="reserve-oem"' in page) is (user == "ayla")


@pytest.mark.parametrize("user", sorted(RESERVABLE))
def test_the_model_select_holds_only_reservable_models(dash: Callable[[str], Dash], user: str) -> None:
    page = dash(user).get("/dashboard").text
    select = page[
        page.index('id="reserve-model"') : page.index("</select>", page.index('id="reserve-model"'))
    ]
    assert [m for m in ("AY001MTC2", "AY001MTP1", "AY001RTA") if f'value="{m}"' in select] == RESERVABLE[user]


# user -> may reset a gateway owned by "gateways", and a black box owned by "products"
RESET = {
    "ayla": (True, True),
    "gateway_admin": (True, None),
    "som": (False, None),
    "product_admin": (None, True),
    "mom": (None, False),
    "mm": (None, False),
    "mm_admin": (None, False),
}


@pytest.mark.parametrize("user", sorted(RESET))
def test_factory_reset_is_offered_only_to_the_owners_admins(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None], user: str
) -> None:
    pool(2)
    (gateway,) = reserve(world, "som", "AY001RTA", 1)
    ok(provision(world, gateway, WHITE_BOX, "som"))
    (black_box,) = reserve(world, "mm", "AY001MTP1", 1)
    ok(manufacture(world, black_box, manufacture_body(1), "mm"))
    lamp = {"model": "AY001MTP1", "oem_model": "lamp", "oem_host_version": "2.0", "module_sw_version": "1.2"}
    ok(provision(world, black_box, lamp, "mom"))
    client = dash(user)
    for dsn, offered in zip((gateway, black_box), RESET[user], strict=True):
        page = client.get(f"/dashboard/devices/{dsn}")
        if offered is None:
            assert page.status_code == 404  # not even visible
            continue
        assert page.status_code == 200
        assert ('data-dialog-open="reset-dialog"' in page.text) is offered
        assert (f'action="/dashboard/devices/{dsn}/factory_reset"' in page.text) is offered
        assert 'href="/dashboard/devices/' + dsn + '/jobs"' in page.text


def test_another_oems_pages_are_404_pages(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None]
) -> None:
    pool(2)
    reserved = reservation(world, "som", "AY001RTA", 1)
    action_id, (dsn,) = reserved.action_id, reserved.dsns
    ok(provision(world, dsn, WHITE_BOX, "som"))
    other = dash("gateway_admin")
    assert other.get(f"/dashboard/devices/{dsn}").status_code == 200  # its own OEM: fine
    stranger = dash("som2")
    for url in (
        f"/dashboard/actions/{action_id}",
        f"/dashboard/actions/{action_id}/live",
        f"/dashboard/actions/{action_id}/files/csv",
        f"/dashboard/actions/{action_id}/files/xml",
        f"/dashboard/devices/{dsn}",
        f"/dashboard/devices/{dsn}/jobs",
        "/dashboard/actions/99999",
        "/dashboard/devices/AC000W999999999",
        "/dashboard/no/such/page",
    ):
        response = stranger.get(url)
        assert response.status_code == 404, url
        assert response.headers["content-type"].startswith("text/html"), url
        assert "AFS-404" in response.text
        assert "<h1>Not found</h1>" in response.text
        assert "Traceback" not in response.text
    assert stranger.post(f"/dashboard/devices/{dsn}/factory_reset").status_code == 403  # not an admin
    reset = dash("product_admin").post(f"/dashboard/devices/{dsn}/factory_reset")  # another OEM's admin
    assert reset.status_code == 404
    assert "AFS-404" in reset.text
    # Its devices are not in the stranger's DSN View, even by action.
    assert dsn not in stranger.get(f"/dashboard/devices?action_id={action_id}").text
    # Another OEM's action in the banner of the list is a 404 too, not a leak.
    assert stranger.get(f"/dashboard?done={action_id}").status_code == 404


@pytest.mark.parametrize(
    ("form", "code", "message"),
    [
        ({"model": "AY001MTP1", "count": "0"}, "AFS-603", "Count should be higher or equal than 1"),
        ({"model": "AY001MTP1", "count": "1001"}, "AFS-602", "1001 is not a valid integer"),
        ({"model": "AY001MTP1", "count": ""}, "AFS-607", "missing required attrs: count"),
        ({"model": "AY001RTA", "count": "1"}, "AFS-601", "AY001RTA is not a valid model"),
        ({"model": "AY001MTP1", "count": "1"}, "AFS-605", "not enough reservable devices"),
    ],
)
def test_service_errors_are_readable_html(
    dash: Callable[[str], Dash], form: dict[str, str], code: str, message: str
) -> None:
    response = dash("mm").post("/dashboard/actions/reserve", form)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert f'<strong class="banner-code">{code}</strong>' in response.text
    assert message in response.text
    assert "data-error" in response.text  # the dialog's script shows this banner
    assert '{"error"' not in response.text
    assert "Factory Actions" in response.text  # the page keeps the layout


def test_a_role_that_may_not_upload_gets_a_403_page(dash: Callable[[str], Dash]) -> None:
    client = dash("mom")
    response = client.post(
        "/dashboard/actions/upload",
        {"type": "manufacture", "validate_only": "true"},
        files={"file": ("a.log", b"# nothing\n", "text/plain")},
    )
    assert response.status_code == 403
    assert "AFS-403" in response.text
    missing = client.post("/dashboard/actions/upload", {"type": "provision", "validate_only": "true"})
    assert missing.status_code == 422
    assert "AFS-607" in missing.text
    assert "missing required attrs: file" in missing.text


def test_bad_search_values_keep_the_page_with_a_message(dash: Callable[[str], Dash]) -> None:
    client = dash("mm")
    actions = client.get("/dashboard?from=yesterday&type=bogus")
    assert actions.status_code == 422
    assert "from yesterday is not a date" in actions.text
    assert 'id="actions-table"' in actions.text
    assert client.get("/dashboard?type=bogus").status_code == 422
    devices = client.get("/dashboard/devices?reserved_after=soon&ads_connect_flag=maybe&status=x")
    assert devices.status_code == 422
    assert "reserved_after soon is not a date" in devices.text
    assert "ads_connect_flag maybe" in devices.text
    assert 'id="devices-table"' in devices.text
    assert client.get("/dashboard/actions/abc").status_code == 422
    assert client.get("/dashboard?cursor=\u00b2").status_code == 422


def test_static_files_and_the_api_keep_their_own_formats(dash: Callable[[str], Dash], world: World) -> None:
    client = dash("mm")
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    js = client.get("/dashboard/static/dashboard.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert client.get("/dashboard/static/../../app.py").status_code == 404
    assert client.get("/dashboard/static/nope.css").status_code == 404
    # The API's errors are still JSON.
    api = world.client.get("/devicefactory/v1/devices/AC000W000000001", headers=world.headers("mm"))
    assert api.status_code == 404
    assert api.json()["error"][0]["code"] == "AFS-404"
    assert client.get("/dashboard/", follow_redirects=False).headers["location"] == "/dashboard"
