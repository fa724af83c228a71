"""The inspector over HTTP (in-process, cookies kept by the client as a browser would): sign-in and its
cookie, namespace isolation on every page and JSON route, redirects without a session, CSRF on every
POST, and the /v1 API untouched by the cookie."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import ADMIN_KEY, bearer
from siftline.service import keys, namespaces
from siftline.service.container import Services

EMB = "mixpeek://vectors@v1/emb"
COLLECTION = {"collection_name": "things", "vector_configs": [{"name": "emb", "dimension": 4}]}
STAGES = [{"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {
    "searches": [{"feature_uri": EMB, "query": {"input_mode": "vector", "value": "{{INPUT.v}}"}}],
    "final_top_k": 5}}}]  # fmt: skip


def _seed(client: TestClient, namespace: str, query: str) -> dict[str, str]:
    """A collection, a retriever and two executions (saved, ad hoc) in ``namespace``."""
    h = bearer(ADMIN_KEY, namespace)
    assert client.post("/v1/namespaces", json={"namespace_name": namespace}, headers=h).status_code in (
        200,
        409,
    )
    assert client.post("/v1/collections", json=COLLECTION, headers=h).status_code == 200
    docs = [{"document_id": f"{namespace}-{i}", "vectors": {"emb": [1.0, i, 0.0, 0.0]}} for i in range(4)]
    assert (
        client.post("/v1/collections/things/documents/batch", json={"documents": docs}, headers=h).status_code
        == 200
    )
    body = {"retriever_name": f"ret-{namespace}", "collection_identifiers": ["things"], "stages": STAGES,
            "input_schema": {"v": {"type": "array"}, "q": {"type": "text"}}}  # fmt: skip
    rid = client.post("/v1/retrievers", json=body, headers=h).json()["retriever_id"]
    inputs = {"v": [1, 0, 0, 0], "q": query}
    saved = client.post(f"/v1/retrievers/{rid}/execute", json={"inputs": inputs}, headers=h).json()
    adhoc_body = {"collection_identifiers": ["things"], "stages": STAGES, "inputs": inputs,
                  "input_schema": body["input_schema"]}  # fmt: skip
    adhoc = client.post("/v1/retrievers/execute", json=adhoc_body, headers=h).json()
    return {"retriever": rid, "saved": saved["execution_id"], "adhoc": adhoc["execution_id"]}


@pytest.fixture
def seeded(client: TestClient) -> dict[str, dict[str, str]]:
    return {"ns-a": _seed(client, "ns-a", "alpha query"), "ns-b": _seed(client, "ns-b", "bravo query")}


@pytest.fixture
def browser(client: TestClient) -> Callable[..., TestClient]:
    """A new cookie jar on the same app, without the admin key: what a browser has."""

    def make(base_url: str = "http://testserver") -> TestClient:
        return TestClient(client.app, base_url=base_url, follow_redirects=False)

    return make


def login_token(ui: TestClient) -> str:
    found = re.search(r'name="login_token" value="([^"]+)"', ui.get("/ui/login").text)
    assert found is not None
    return found.group(1)


def sign_in(ui: TestClient, key: str, namespace: str = "default", **extra: str) -> Any:
    form = {"login_token": login_token(ui), "api_key": key, "namespace": namespace, **extra}
    return ui.post("/ui/login", data=form)


def csrf(ui: TestClient, path: str = "/ui/") -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', ui.get(path).text)
    assert found is not None
    return found.group(1)


def test_signing_in_sets_a_strict_httponly_cookie_for_ui_only_without_the_key(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser()
    key = make_key()
    done = sign_in(ui, key, next="/ui/executions?status=failed")
    assert done.status_code == 303 and done.headers["location"] == "/ui/executions?status=failed"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("siftline_session="))
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes and "secure" not in attributes
    assert "Path=/ui" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    assert key not in cookie and keys.hash_key(key) not in cookie
    assert ui.get("/ui/").status_code == 200


def test_over_https_the_cookie_is_secure(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser("https://testserver")
    done = sign_in(ui, make_key())
    assert done.status_code == 303
    assert (
        "; secure" in next(c for c in done.headers.get_list("set-cookie") if "siftline_session" in c).lower()
    )


def test_a_wrong_key_or_namespace_stays_on_the_form_with_the_reason(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser()
    wrong = sign_in(ui, "sk_live_this_is_not_a_key_0000000000")
    assert (
        wrong.status_code == 401
        and "Invalid API key" in wrong.text
        and "siftline_session" not in wrong.headers.get("set-cookie", "")
    )
    limited = make_key("ns-a")
    refused = sign_in(ui, limited, "default")
    assert refused.status_code == 403 and "may not use namespace" in refused.text
    assert sign_in(ui, make_key(), "nowhere").status_code == 404
    assert ui.get("/ui/").status_code == 303


def test_a_key_limited_to_one_namespace_sees_nothing_of_another(
    browser: Callable[..., TestClient], make_key: Callable[..., str], seeded: dict[str, dict[str, str]]
) -> None:
    ui = browser()
    assert sign_in(ui, make_key("ns-a"), "ns-a").status_code == 303
    a, b = seeded["ns-a"], seeded["ns-b"]
    listing = ui.get("/ui/executions").text
    assert a["saved"] in listing and a["adhoc"] in listing and "alpha query" in listing
    assert (
        b["saved"] not in listing
        and b["adhoc"] not in listing
        and "bravo" not in listing
        and "ns-b" not in listing
    )
    for query in ("", "?mode=adhoc", f"?retriever={b['retriever']}", "?retriever=ret-ns-b", "?sort=duration"):
        page = ui.get(f"/ui/executions{query}").text
        assert b["saved"] not in page and b["adhoc"] not in page
    assert 'name="namespace"' not in listing  # one namespace: no switcher
    for execution in (b["saved"], b["adhoc"]):
        assert ui.get(f"/ui/executions/{execution}").status_code == 404
        assert ui.get(f"/ui/api/executions/{execution}").status_code == 404
        assert ui.get(f"/ui/api/executions/{execution}?download=1").status_code == 404
        assert ui.get(f"/ui/api/executions/{execution}/live").status_code == 404
    rows = ui.get(f"/ui/api/executions?ids={b['saved']},{a['saved']},{b['adhoc']}").json()["executions"]
    assert [r["execution_id"] for r in rows] == [a["saved"]]
    assert ui.get(f"/ui/executions/{a['saved']}").status_code == 200
    assert ui.get(f"/ui/api/executions/{a['adhoc']}").json()["execution_mode"] == "adhoc"
    token = csrf(ui)
    switched = ui.post("/ui/namespace", data={"csrf_token": token, "namespace": "ns-b"})
    assert switched.status_code == 403 and b["saved"] not in ui.get("/ui/executions").text


def test_a_key_with_two_namespaces_switches_between_them(
    browser: Callable[..., TestClient], services: Services, seeded: dict[str, dict[str, str]]
) -> None:
    ids = [namespaces.ensure_namespace(services.storage, n).namespace_id for n in ("ns-a", "ns-b")]
    _, key = keys.create_key(services.storage, "two", ids)
    ui = browser()
    assert sign_in(ui, key, "ns-a").status_code == 303
    page = ui.get("/ui/").text
    assert 'id="ns-select"' in page and ">ns-b</option>" in page and ">default</option>" not in page
    assert seeded["ns-b"]["saved"] not in page
    done = ui.post("/ui/namespace", data={"csrf_token": csrf(ui), "namespace": "ns-b"})
    assert done.status_code == 303 and done.headers["location"] == "/ui/"
    page = ui.get("/ui/").text
    assert seeded["ns-b"]["saved"] in page and seeded["ns-a"]["saved"] not in page
    assert ui.get(f"/ui/executions/{seeded['ns-a']['saved']}").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/ui", "/ui/", "/ui/executions?status=failed", "/ui/executions/exec_anything", "/ui/no/such/page"],
)
def test_without_a_session_every_page_goes_to_the_sign_in_form(
    browser: Callable[..., TestClient], path: str
) -> None:
    ui = browser()
    done = ui.get(path)
    assert done.status_code == 303
    assert done.headers["location"].startswith("/ui/login?next=%2Fui")
    ui.cookies.set("siftline_session", "v1.key_x.ns_x.99999999999.nonce.0000", path="/ui")
    assert ui.get(path).status_code == 303  # a forged cookie is no session either


def test_without_a_session_the_pages_json_answers_401(browser: Callable[..., TestClient]) -> None:
    ui = browser()
    for path in ("/ui/api/executions?ids=x", "/ui/api/executions/exec_x", "/ui/api/executions/exec_x/live"):
        done = ui.get(path)
        assert done.status_code == 401 and done.json()["error"]["type"] == "UnauthorizedError"


def test_the_sign_in_form_comes_back_to_where_it_was_asked_for_only_on_this_site(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser()
    assert (
        ui.get("/ui/executions?mode=adhoc").headers["location"]
        == "/ui/login?next=%2Fui%2Fexecutions%3Fmode%3Dadhoc"
    )
    assert 'value="/ui/executions?mode=adhoc"' in ui.get("/ui/login?next=/ui/executions?mode=adhoc").text
    for evil in ("https://evil.example/", "//evil.example/ui"):
        assert sign_in(browser(), make_key(), next=evil).headers["location"] == "/ui/"


def test_every_post_needs_its_csrf_token(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser()
    key = make_key()
    # sign-in: the token must match the cookie set with the form (double submit); a cross-site form has neither
    forged = browser().post(
        "/ui/login", data={"api_key": key, "namespace": "default", "login_token": "made-up"}
    )
    assert forged.status_code == 403 and "siftline_session" not in forged.headers.get("set-cookie", "")
    login_token(ui)
    assert ui.post("/ui/login", data={"api_key": key, "login_token": "wrong"}).status_code == 403
    other_site = ui.post(
        "/ui/login",
        data={"api_key": key, "login_token": login_token(ui)},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert sign_in(ui, key).status_code == 303
    token = csrf(ui)
    for path, form in (("/ui/logout", {}), ("/ui/namespace", {"namespace": "default"})):
        assert ui.post(path, data=form).status_code == 403
        assert ui.post(path, data={**form, "csrf_token": token[:-2] + "00"}).status_code == 403
        headers = {"Origin": "https://evil.example"}
        assert ui.post(path, data={**form, "csrf_token": token}, headers=headers).status_code == 403
    assert ui.get("/ui/").status_code == 200  # still signed in
    assert (
        ui.post("/ui/namespace", headers={"X-CSRF-Token": token}, data={"namespace": "default"}).status_code
        == 303
    )


def test_signing_out_clears_the_cookie(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser()
    sign_in(ui, make_key())
    done = ui.post("/ui/logout", data={"csrf_token": csrf(ui)})
    assert done.status_code == 303 and done.headers["location"] == "/ui/login"
    assert 'siftline_session=""' in done.headers["set-cookie"] and "Max-Age=0" in done.headers["set-cookie"]
    assert ui.get("/ui/").status_code == 303


def test_revoking_the_key_signs_its_sessions_out(
    browser: Callable[..., TestClient], services: Services, make_key: Callable[..., str]
) -> None:
    ui = browser()
    key = make_key()
    sign_in(ui, key)
    found = services.storage.key_by_hash(keys.hash_key(key))
    assert found is not None
    keys.revoke_key(services.storage, found.key_id)
    assert ui.get("/ui/").status_code == 303


def test_the_v1_api_never_takes_the_session_cookie(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser()
    sign_in(ui, make_key())
    session = ui.cookies.get("siftline_session")
    assert session
    for method, path in (("POST", "/v1/namespaces/list"), ("POST", "/v1/retrievers/executions/list")):
        done = ui.request(method, path, json={}, headers={"Cookie": f"siftline_session={session}"})
        assert done.status_code == 401


def test_pages_carry_a_strict_content_security_policy_and_no_caching(
    browser: Callable[..., TestClient], make_key: Callable[..., str]
) -> None:
    ui = browser()
    form = ui.get("/ui/login")
    assert "script-src 'self'" in form.headers["content-security-policy"]
    assert form.headers["cache-control"] == "no-store" and form.headers["x-frame-options"] == "DENY"
    sign_in(ui, make_key())
    assert "default-src 'none'" in ui.get("/ui/").headers["content-security-policy"]
    assert ui.get("/ui/static/ui.js").status_code == 200 and ui.get("/ui/static/ui.css").status_code == 200


def test_an_execution_page_shows_the_plan_it_ran_and_links_a_replay_to_its_original(
    client: TestClient,
    browser: Callable[..., TestClient],
    make_key: Callable[..., str],
    seeded: dict[str, dict[str, str]],
) -> None:
    original = seeded["ns-a"]["saved"]
    replayed = client.post(f"/v1/retrievers/executions/{original}/replay", headers=bearer(ADMIN_KEY, "ns-a"))
    assert replayed.status_code == 200, replayed.text
    ui = browser()
    sign_in(ui, make_key("ns-a"), "ns-a")
    page = ui.get(f"/ui/executions/{original}").text
    assert "As this execution ran them" in page and "feature_search" in page
    replay_page = ui.get(f"/ui/executions/{replayed.json()['execution_id']}").text
    assert f'replay of <a class="mono" href="/ui/executions/{original}">' in replay_page
