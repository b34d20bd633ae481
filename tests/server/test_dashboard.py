"""The dashboard, driven in headless Chromium (Debian's, through Playwright) against a live
server over TLS: log in, a failed backup on the overview, the item page, acknowledging an
alert, what a reader sees, sessions that expire, and refusals."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import pytest

from dashkit import fill, running_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: With STRONGROOM_SCREENSHOTS=1 the screenshots go to docs/images/ (to commit), else to the test's folder.
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

playwright_api = pytest.importorskip("playwright.sync_api", reason="the dashboard tests need pip install playwright")
if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):  # CI installs it (scripts/setup.sh): its absence there is a failure
        pytest.fail("the dashboard tests need Debian's chromium (scripts/apt/server.txt)", pytrace=False)
    pytest.skip("the dashboard tests need Debian's chromium (scripts/apt/server.txt)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def served(tmp_path, strongroom_isolated_home):
    with running_server(tmp_path, vaults=("main", "other")) as s:
        fill(s, "main")
        yield s


@pytest.fixture
def page_of(browser):
    """A new browser page (own cookies) for each call; closed at the end of the test."""
    contexts = []

    def make():
        ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def log_in(page, served, token: str):
    page.goto(f"{served.base}/dashboard/")
    assert page.url.endswith("/dashboard/login")  # no session: the login form
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    page.wait_for_load_state()


class TestAdminFlow:
    def test_log_in_see_the_failed_backup_open_the_item_and_acknowledge(self, served, page_of, tmp_path):
        """An owner logs in, sees the failed backup of 'lost' on the overview, opens the item
        (points, jobs, chart) and acknowledges its alert, which the journal then records."""
        page = page_of()
        log_in(page, served, served.admin)
        assert page.url.endswith("/dashboard/")
        row = page.locator('#vault-main tr.item[data-item="lost"]')
        assert "failing" in row.get_attribute("class")
        assert "failed" in row.locator(".last-state").inner_text()
        assert "does not exist" in row.inner_text()  # the job's error line
        assert page.locator("#vault-main .failed-count").inner_text() == "1"
        assert page.locator("#vault-main .alert-count").inner_text() == "1"
        docs = page.locator('#vault-main tr.item[data-item="docs"]')
        assert "completed" in docs.locator(".last-state").inner_text()
        images = DOC_IMAGES if os.environ.get("STRONGROOM_SCREENSHOTS") == "1" else tmp_path
        images.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(images / "dashboard-overview.png"), full_page=True)

        page.click('#vault-main tr.item[data-item="docs"] a')
        page.wait_for_load_state()
        assert page.url.endswith("/dashboard/vaults/main/items/docs")
        assert page.locator("table.points tr").count() == 1 + 2  # header + two points
        assert page.locator("#chart rect.bar").count() == 2
        assert page.locator("#chart polyline").count() == 1
        page.screenshot(path=str(images / "dashboard-item.png"), full_page=True)
        assert (images / "dashboard-overview.png").stat().st_size > 10_000

        page.goto(f"{served.base}/dashboard/vaults/main/items/lost")
        assert page.locator("table.jobs tr.job.failed").count() == 1

        page.goto(f"{served.base}/dashboard/alerts")
        alert = page.locator("tr.alert")
        assert alert.count() == 1 and "backup.failed" in alert.inner_text()
        alert_id = alert.get_attribute("data-alert")
        page.click(f'button.ack[data-alert="{alert_id}"]')
        page.wait_for_load_state()
        assert page.locator("#no-alerts").count() == 1
        assert not [a for a in served.vault().alerts.list() if a.open]
        acks = [e for e in served.vault().journal.entries() if e.operation == "alerts.ack"]
        assert acks and acks[-1].params["by"] == "admin (dashboard)"

        page.goto(f"{served.base}/dashboard/journal?vault=main")
        assert "alerts.ack" in page.locator("table.journal").inner_text()
        page.goto(f"{served.base}/dashboard/")
        assert page.locator("#vault-main .alert-count").inner_text() == "0"

    def test_jobs_page_filters(self, served, page_of):
        """The jobs page narrows by vault, item, state and type."""
        page = page_of()
        log_in(page, served, served.admin)
        page.goto(f"{served.base}/dashboard/jobs?vault=main&type=backup")
        assert page.locator("tr.job").count() == 4
        page.goto(f"{served.base}/dashboard/jobs?vault=main&state=failed")
        rows = page.locator("tr.job")
        assert rows.count() == 1 and "lost" in rows.inner_text()
        page.goto(f"{served.base}/dashboard/jobs?vault=main&item=docs&state=completed")
        assert page.locator("tr.job").count() == 2
        page.goto(f"{served.base}/dashboard/jobs?vault=other")
        assert page.locator("tr.job").count() == 0

    def test_the_session_cookie_is_httponly_secure_and_strict(self, served, page_of):
        """The session cookie cannot be read by scripts, is sent over TLS only, same site only."""
        page = page_of()
        log_in(page, served, served.admin)
        (cookie,) = [c for c in page.context.cookies() if c["name"] == "strongroom_session"]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert served.admin not in cookie["value"]  # the token itself is never in the cookie
        assert page.evaluate("document.cookie") == ""


class TestReader:
    def test_a_reader_sees_only_their_vault_and_no_write_form_but_acknowledge(self, served, page_of):
        """A reader of 'main' sees it (not 'other'), and the only forms are log out and acknowledge."""
        token = served.token("rita", "main", "reader")
        page = page_of()
        log_in(page, served, token)
        assert page.locator("#vault-main").count() == 1
        assert page.locator("#vault-other").count() == 0
        for path in ("/dashboard/", "/dashboard/vaults/main", "/dashboard/vaults/main/items/lost",
                     "/dashboard/jobs", "/dashboard/alerts", "/dashboard/journal"):
            page.goto(served.base + path)
            actions = {f.get_attribute("action") for f in page.locator("form[method=post]").all()}
            assert actions <= {"/dashboard/logout"} | {a for a in actions if re.fullmatch(
                r"/dashboard/vaults/main/alerts/[0-9a-f]+/ack", a)}, (path, actions)
        page.goto(f"{served.base}/dashboard/alerts")
        page.click("button.ack")  # Azure's Backup Reader may resolve alerts
        page.wait_for_load_state()
        assert page.locator("#no-alerts").count() == 1

    def test_another_vaults_page_is_not_found_and_recorded(self, served, page_of):
        """A page of a vault without a role is 404, and the refusal is in that vault's journal."""
        token = served.token("rita", "main", "reader")
        page = page_of()
        log_in(page, served, token)
        response = page.goto(f"{served.base}/dashboard/vaults/other")
        assert response.status == 404
        refused = [e for e in served.vault("other").journal.entries() if e.outcome == "refused"]
        assert refused and refused[-1].params["user"] == "rita"

    def test_a_user_without_a_role_sees_no_vault(self, served, page_of):
        """A token of a user with no role logs in and sees no vault at all."""
        token = served.token("nobody")
        page = page_of()
        log_in(page, served, token)
        assert page.locator("section.vault").count() == 0
        assert page.goto(f"{served.base}/dashboard/vaults/main/items/docs").status == 404


class TestSessions:
    def test_a_wrong_token_does_not_log_in(self, served, page_of):
        """A wrong token gets the login form again with one line, and no session."""
        page = page_of()
        log_in(page, served, "srv_0123456789abcdef_" + "x" * 43)
        assert "not valid" in page.locator("#login-error").inner_text()
        assert not [c for c in page.context.cookies() if c["name"] == "strongroom_session"]

    def test_a_session_expires(self, served, page_of):
        """After session_minutes the next page is the login form."""
        page = page_of()
        log_in(page, served, served.admin)
        page.goto(f"{served.base}/dashboard/alerts")
        assert page.url.endswith("/dashboard/alerts")
        served.clock.offset = dt.timedelta(minutes=31)
        page.goto(f"{served.base}/dashboard/alerts")
        assert page.url.endswith("/dashboard/login")

    def test_revoking_the_token_ends_its_sessions(self, served, page_of):
        """A session whose token is revoked counts no more, at the next request."""
        token = served.token("otto", "main", "operator")
        page = page_of()
        log_in(page, served, token)
        assert page.url.endswith("/dashboard/")
        served.sdir.users.revoke(token.split("_")[1])
        page.goto(f"{served.base}/dashboard/")
        assert page.url.endswith("/dashboard/login")

    def test_log_out(self, served, page_of):
        """Log out drops the session."""
        page = page_of()
        log_in(page, served, served.admin)
        page.click("#logout")
        page.wait_for_load_state()
        assert page.url.endswith("/dashboard/login")
        page.goto(f"{served.base}/dashboard/")
        assert page.url.endswith("/dashboard/login")


class TestForgedRequests:
    def test_acknowledge_without_the_csrf_token_is_refused(self, served):
        """A POST with the session cookie but without the form's CSRF token changes nothing."""
        with served.client() as c:
            assert c.post("/dashboard/login", data={"token": served.admin}).status_code == 303
            (alert,) = served.vault().alerts.list()
            r = c.post(f"/dashboard/vaults/main/alerts/{alert.alert_id}/ack", data={"csrf": "forged"})
            assert r.status_code == 403
            assert served.vault().alerts.list()[0].open
            page = c.get("/dashboard/alerts").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            r = c.post(f"/dashboard/vaults/main/alerts/{alert.alert_id}/ack", data={"csrf": csrf})
            assert r.status_code == 303 and not served.vault().alerts.list()

    def test_a_forged_cookie_is_no_session(self, served):
        """A cookie whose signature does not match is ignored: the login page."""
        with served.client() as c:
            c.post("/dashboard/login", data={"token": served.admin})
            value = c.cookies["strongroom_session"]
            body, sig = value.split(".")
            c.cookies.clear()
            c.cookies.set("strongroom_session", body + "." + sig[::-1], domain="127.0.0.1", path="/dashboard")
            r = c.get("/dashboard/")
            assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
