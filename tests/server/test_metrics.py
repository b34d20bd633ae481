"""``/metrics`` on a live server: the exposition parses, its values are the vault's, access
needs a token with a role, and requests are counted by role and route."""

from __future__ import annotations

import pytest

from dashkit import fill, running_server

parser = pytest.importorskip("prometheus_client.parser")


@pytest.fixture
def served(tmp_path, strongroom_isolated_home):
    with running_server(tmp_path, vaults=("main", "other")) as s:
        fill(s, "main")
        yield s


def scrape(served, token: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample of one scrape."""
    with served.client(token) as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parser.text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


class TestValues:
    def test_item_and_vault_values_are_the_vaults(self, served):
        """Last success, duration, bytes and points per item; storage, dedup, jobs and alerts
        per vault: each equals what the vault itself says."""
        samples = scrape(served, served.admin)
        vault = served.vault()
        points = vault.points()
        for item in ("docs", "lost"):
            mine = sorted((p for p in points if p.item_name == item), key=lambda p: p.created)
            newest = mine[-1]
            assert value(samples, "strongroom_item_points", vault="main", item=item) == len(mine)
            assert value(samples, "strongroom_item_last_success_timestamp_seconds", vault="main", item=item) == \
                pytest.approx(__import__("datetime").datetime.fromisoformat(newest.created).timestamp())
            assert value(samples, "strongroom_item_last_backup_duration_seconds", vault="main", item=item) == \
                pytest.approx(newest.stats["seconds"])
            assert value(samples, "strongroom_item_last_backup_new_bytes", vault="main", item=item) == \
                newest.stats["new_bytes"]
            assert value(samples, "strongroom_item_last_backup_stored_bytes", vault="main", item=item) == \
                newest.stats["stored_bytes"]
        assert value(samples, "strongroom_item_last_backup_failed", vault="main", item="lost") == 1
        assert value(samples, "strongroom_item_last_backup_failed", vault="main", item="docs") == 0
        stored = sum(p.stats["stored_bytes"] for p in points)
        protected = sum(p.stats["bytes_total"] for p in points)
        assert value(samples, "strongroom_vault_stored_bytes", vault="main") == stored
        assert value(samples, "strongroom_vault_protected_bytes", vault="main") == protected
        assert value(samples, "strongroom_vault_dedup_ratio", vault="main") == pytest.approx(protected / stored)
        assert value(samples, "strongroom_vault_points", vault="main") == len(points)
        assert value(samples, "strongroom_vault_jobs", vault="main", state="completed") == 3
        assert value(samples, "strongroom_vault_jobs", vault="main", state="failed") == 1
        assert value(samples, "strongroom_vault_alerts_open", vault="main") == 1
        assert value(samples, "strongroom_vault_failed_jobs_24h", vault="main") == 1
        assert value(samples, "strongroom_vault_up", vault="other") == 1
        assert value(samples, "strongroom_vault_points", vault="other") == 0

    def test_a_new_backup_shows_after_the_cache(self, served):
        """A later backup moves the item's points and last success once the cache is dropped."""
        before = scrape(served, served.admin)
        served.vault().backup("docs")
        served.refresh("main")
        after = scrape(served, served.admin)
        key = ("strongroom_item_points", frozenset({"vault": "main", "item": "docs"}.items()))
        assert after[key] == before[key] + 1
        last = ("strongroom_item_last_success_timestamp_seconds", frozenset({"vault": "main", "item": "docs"}.items()))
        assert after[last] > before[last]


class TestAccess:
    def test_no_token_or_a_wrong_one_is_401(self, served):
        """Without a valid token: 401, and the refusal is in the server's audit log."""
        with served.client() as c:
            assert c.get("/metrics").status_code == 401
        with served.client("srv_0123456789abcdef_" + "y" * 43) as c:
            assert c.get("/metrics").status_code == 401
        assert "GET /metrics" in served.sdir.audit_log.read_text()

    def test_a_user_without_a_role_is_403(self, served):
        """A valid token of a user with no role on any vault: 403."""
        with served.client(served.token("nobody")) as c:
            r = c.get("/metrics")
        assert r.status_code == 403 and "no role" in r.text

    def test_a_reader_scrapes_only_their_vaults(self, served):
        """A reader of 'other' gets the series of 'other', none of 'main'."""
        samples = scrape(served, served.token("prometheus", "other", "reader"))
        vaults = {dict(labels).get("vault") for _, labels in samples}
        assert "other" in vaults and "main" not in vaults


class TestRequests:
    def test_requests_are_counted_by_role_and_route(self, served):
        """Dashboard and metrics requests are counted under the caller's role and the route's template."""
        reader = served.token("rita", "main", "reader")
        with served.client() as c:
            c.post("/dashboard/login", data={"token": reader})
            for _ in range(3):
                assert c.get("/dashboard/vaults/main").status_code == 200
            assert c.get("/dashboard/vaults/other").status_code == 404
        with served.client() as c:
            c.get("/metrics")
        samples = scrape(served, served.admin)
        assert value(samples, "strongroom_http_requests_total", role="reader", route="/dashboard/vaults/{vault}",
                     method="GET", status="200") == 3
        assert value(samples, "strongroom_http_requests_total", role="none", route="/dashboard/vaults/{vault}",
                     method="GET", status="404") == 1
        assert value(samples, "strongroom_http_requests_total", role="none", route="/metrics",
                     method="GET", status="401") == 1
        assert value(samples, "strongroom_http_request_duration_seconds_count", role="reader",
                     route="/dashboard/vaults/{vault}") == 3
