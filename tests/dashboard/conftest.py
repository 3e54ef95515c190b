"""Dashboard fixtures: a signed-in browser-like client per user, and a live server with workers."""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.live import LiveServer
from tests.world import PASSWORD, World

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(page: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(page)
    assert found, "the page has no CSRF field"
    return html.unescape(found.group(1))


@dataclass
class Dash:
    """A TestClient with its own cookie jar, signed in through the sign-in form."""

    client: TestClient
    user: str
    email: str

    def get(self, url: str, **kwargs: Any) -> httpx2.Response:
        return self.client.get(url, **kwargs)

    def csrf(self, page_url: str = "/dashboard") -> str:
        response = self.client.get(page_url)
        assert response.status_code == 200, response.text
        return csrf_of(response.text)

    def post(
        self, url: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kw: Any
    ) -> httpx2.Response:
        fields = dict(data or {})
        if csrf:
            fields["csrf_token"] = self.csrf()
        return self.client.post(url, data=fields, follow_redirects=False, **kw)


def sign_in_form(
    client: TestClient, email: str, password: str = PASSWORD, *, next_url: str = "/dashboard"
) -> httpx2.Response:
    """Open the sign-in page and post its form (not following the redirect)."""
    page = client.get("/dashboard/sign_in")
    assert page.status_code == 200
    return client.post(
        "/dashboard/sign_in",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text), "next": next_url},
        follow_redirects=False,
    )


@pytest.fixture
def dash(app: FastAPI, world: World) -> Iterator[Callable[[str], Dash]]:
    """``dash("mm")``: a client signed in to the dashboard as that world user."""
    clients: list[TestClient] = []

    def open_as(user: str, *, base_url: str = "http://testserver") -> Dash:
        client = TestClient(app, base_url=base_url)
        clients.append(client)
        response = sign_in_form(client, world.emails[user])
        assert response.status_code == 303, response.text
        return Dash(client, user, world.emails[user])

    yield open_as
    for client in clients:
        client.close()


class WorkingServer(LiveServer):
    """``devicefactory serve`` WITH its background workers: uploads get worked for real."""

    def __init__(self, database_url: str, master_key_file: Path, workdir: Path) -> None:
        super().__init__(
            database_url,
            master_key_file,
            workdir,
            background_workers=True,
            extra_env={
                "DEVICEFACTORY_ACTION_POLL_SECONDS": "0.2",
                # Small batches, so that the progress of an upload is seen moving.
                "DEVICEFACTORY_ACTION_BATCH_SIZE": "2",
            },
        )


@pytest.fixture
def working_server(
    database_url: str, master_key_file: Path, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[WorkingServer]:
    server = WorkingServer(database_url, master_key_file, tmp_path)
    server.start()
    yield server
    server.stop()


# --- the browser --------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The user guide's pictures are rewritten only when asked (DEVICEFACTORY_SCREENSHOTS=1), so a
# test run leaves the working tree clean; otherwise they go to a scratch directory.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("DEVICEFACTORY_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "devicefactory-screenshots"
)
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (one browser for the session)."""
    if not CHROMIUM.exists():
        # CI installs Chromium and sets CI: there a missing browser is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing (.ci/run installs Debian's chromium)")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(base_url)``: a fresh browser context (its own cookies) at 1280x800."""
    contexts: list[Any] = []

    def open_page(base_url: str, viewport: dict[str, int] = DESKTOP) -> Any:
        context = chromium.new_context(base_url=base_url, viewport=viewport, accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Save the visible page as docs/screenshots/<name>.png (the user guide shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    page.screenshot(
        path=str(SCREENSHOTS / f"{name}.png"), animations="disabled", caret="hide", full_page=full_page
    )
