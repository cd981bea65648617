"""The JSON API and the pages over HTTP: what each answers for a home with real runs,
escaping, secrets, the token and the "run now" form's protection."""

from __future__ import annotations

import re

import requests
from conftest import Served
from ui_support import SECRET, XSS_NAME, XSS_REASON, UiHome


def _get(served: Served, path: str, **kwargs: object) -> requests.Response:
    return requests.get(served.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_sources_api_shows_each_source_with_its_last_run_and_freshness(
    served: Served, ui_home: UiHome
) -> None:
    sources = {s["name"]: s for s in _get(served, "/api/sources").json()}
    assert sorted(sources) == ["billing", "crm", "live", "orders"]
    assert sources["billing"]["last_run"]["status"] == "succeeded"
    assert sources["billing"]["last_run"]["imported"] == 400
    assert sources["billing"]["freshness"] == "fresh"
    assert sources["billing"]["live_version"] == ui_home.runs["billing"].version_id
    assert sources["billing"]["period"] == 86400
    assert sources["crm"]["last_run"]["status"] == "failed"
    assert sources["crm"]["freshness"] == "stale"  # never succeeded
    assert sources["live"]["last_run"]["status"] == "running"
    assert sources["live"]["freshness"] == "unscheduled"
    assert sources["orders"]["last_run"]["quarantined"] == 30
    assert _get(served, "/api/").json() == {"sources": list(sources.values())}


def test_run_api_has_phases_in_order_and_throughput(served: Served, ui_home: UiHome) -> None:
    run_id = ui_home.runs["billing"].run_id
    run = _get(served, f"/api/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert [p["phase"] for p in sorted(run["phases"], key=lambda p: p["started_at"])] == [
        "create",
        "import",
        "extract",
        "publish",
        "live",
        "prune",
    ]
    assert all(p["ok"] for p in run["phases"])
    assert run["throughput"][-1]["imported"] == 400
    assert [p["imported"] for p in run["throughput"]] == sorted(
        p["imported"] for p in run["throughput"]
    )
    assert _get(served, "/api/runs/no-such-run").status_code == 404
    assert _get(served, "/runs/no-such-run").status_code == 404


def test_quarantine_api_counts_reasons_and_shows_samples(served: Served, ui_home: UiHome) -> None:
    run_id = ui_home.runs["orders"].run_id
    quarantine = _get(served, f"/api/runs/{run_id}/quarantine").json()
    assert quarantine["records"] == 30
    assert quarantine["reasons"] == [{"reason": XSS_REASON, "count": 30}]
    assert XSS_NAME in quarantine["samples"][0]["record"]
    download = _get(served, f"/runs/{run_id}/quarantine.jsonl")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    assert len(download.content.splitlines()) == 30


def test_datasets_api_lists_versions_with_live_state_and_counts(
    served: Served, ui_home: UiHome
) -> None:
    datasets = {d["dataset_id"]: d for d in _get(served, "/api/datasets").json()["datasets"]}
    billing = datasets["BILLING"]
    assert billing["error"] is None
    live = [v for v in billing["versions"] if v["live"]]
    assert [v["version_id"] for v in live] == [ui_home.runs["billing"].version_id]
    assert live[0]["records"] == 400 and live[0]["state"] == "live"
    assert not any(v["live"] for v in datasets["LIVE"]["versions"])  # still being written


def test_values_from_sources_and_records_are_escaped(served: Served, ui_home: UiHome) -> None:
    run_id = ui_home.runs["orders"].run_id
    page = _get(served, f"/runs/{run_id}/quarantine").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page
    assert "&lt;img src=x onerror=alert(" in page
    failed = _get(served, f"/runs/{ui_home.runs['crm'].run_id}").text
    assert "<b>denied</b>" not in failed and "&lt;b&gt;denied&lt;/b&gt;" in failed


def test_no_secret_is_served_anywhere(served: Served, ui_home: UiHome) -> None:
    crm = ui_home.runs["crm"].run_id
    orders = ui_home.runs["orders"].run_id
    paths = [
        "/",
        "/api/",
        "/sources/crm",
        "/api/sources/crm",
        f"/runs/{crm}",
        f"/api/runs/{crm}",
        "/datasets",
        "/api/datasets",
        "/metrics",
        f"/runs/{orders}/quarantine.jsonl",
    ]
    for path in paths:
        answer = _get(served, path)
        assert answer.status_code == 200, path
        assert SECRET not in answer.text, path
    error = _get(served, f"/api/runs/{crm}").json()["error"]
    assert "api_key=***" in error and "401 from" in error


def test_every_answer_forbids_framing_and_foreign_scripts(served: Served) -> None:
    headers = _get(served, "/").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_pages_load_only_assets_shipped_in_the_package(served: Served) -> None:
    page = _get(served, "/sources/billing").text
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets)
    for asset in (a for a in assets if a.startswith("/static/")):
        assert _get(served, asset).status_code == 200, asset


def test_token_missing_wrong_and_right(ui_home: UiHome) -> None:
    token = "a-long-enough-token-for-tests"
    server = Served(ui_home, token=token)
    try:
        for path in ("/", "/api/sources", "/metrics", "/sources/billing"):
            assert requests.get(server.url + path, timeout=30).status_code == 401, path
            wrong = requests.get(
                server.url + path, timeout=30, headers={"Authorization": "Bearer not-the-token"}
            )
            assert wrong.status_code == 401, path
            right = requests.get(
                server.url + path, timeout=30, headers={"Authorization": f"Bearer {token}"}
            )
            assert right.status_code == 200, path
        assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
        with requests.Session() as session:  # a browser opens ?token= once, then a cookie
            first = session.get(
                server.url + "/datasets?token=" + token, timeout=30, allow_redirects=False
            )
            assert first.status_code == 303 and first.headers["Location"] == "/datasets"
            assert session.get(server.url + "/api/sources", timeout=30).status_code == 200
    finally:
        server.stop()


def _form_token(served: Served, source: str) -> str:
    page = _get(served, f"/sources/{source}").text
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the page has no run-now form"
    return match.group(1)


def test_run_now_accepts_its_own_form(served: Served) -> None:
    served.asked.clear()
    answer = requests.post(
        served.url + "/sources/billing/run",
        timeout=30,
        data={"csrf": _form_token(served, "billing")},
        headers={"Origin": served.url, "Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status_code == 200 and "billing: run started" in answer.text
    assert served.asked == ["billing"]


def test_cross_site_run_now_is_refused(served: Served) -> None:
    served.asked.clear()
    token = _form_token(served, "billing")
    attempts = [
        ({}, {}),  # no form token
        ({"csrf": "0" * 64}, {}),  # a guessed one
        ({"csrf": token}, {"Origin": "http://evil.example"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": _form_token(served, "crm")}, {}),  # another source's form
    ]
    for form, headers in attempts:
        answer = requests.post(
            served.url + "/sources/billing/run",
            data=form,
            headers=headers,
            timeout=30,
            allow_redirects=False,
        )
        assert answer.status_code == 403, (form, headers)
        assert "refused" in answer.text
    assert served.asked == []
    assert requests.get(served.url + "/sources/billing/run", timeout=30).status_code == 405
