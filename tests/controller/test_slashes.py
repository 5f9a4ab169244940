"""Every route of the app answers at its path with and without a trailing slash, the same way, never with a redirect."""

import re

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests.controller.api_harness import Api

REDIRECTS = (301, 302, 303, 307, 308)


def _both_forms(path: str) -> tuple[str, str]:
    filled = re.sub(r"\{[^}]+\}", "1", path)
    return filled, filled[:-1] if filled.endswith("/") else filled + "/"


def _answers(api: Api, method: str, path: str) -> httpx.Response:
    body = {"json": {}} if method in ("POST", "PUT") else {}
    return api.request(method, path, **body)


def test_every_route_answers_both_forms_identically(api: Api) -> None:
    contexts = iter_route_contexts(api.app.routes)  # the routes of the routers the app includes, with their prefix
    routes = [(method, route.path) for route in contexts if route.path for method in route.methods or ()]
    assert len(routes) > 15  # the walk reached the app's routes: both APIs, artifacts, events, health, the docs
    for method, path in routes:
        if method == "HEAD":
            continue
        declared, other = _both_forms(path)
        first, second = _answers(api, method, declared), _answers(api, method, other)
        assert first.status_code not in (*REDIRECTS, 405), (method, declared, first.status_code)
        assert (second.status_code, second.content) == (first.status_code, first.content), (method, other)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v0/operations", 201),  # was a 307, which many clients follow without the body
        ("POST", "/v0/operations/", 201),
        ("GET", "/v0/operations", 200),
        ("GET", "/devicecontrol/operations/", 200),  # was a 405 while POST to it was a 201
        ("POST", "/devicecontrol/operations/", 201),
        ("POST", "/devicecontrol/operations", 201),
        ("GET", "/healthz/", 200),
    ],
)
def test_both_forms_do_what_the_route_does(api: Api, method: str, path: str, status: int) -> None:
    api.announce("d1")
    bodies = {
        "/v0/": {"operation_type": "LOCK", "operation_device_query": {"device_id": "d1"}},
        "/devicecontrol/": {"deviceId": "d1", "c8y_Restart": {}},
    }
    body = next((value for prefix, value in bodies.items() if path.startswith(prefix)), None)
    response = api.request(method, path, json=body) if method == "POST" else api.request(method, path)
    assert response.status_code == status, response.text


def test_links_in_an_answer_use_the_routes_own_form(api: Api) -> None:
    api.announce("d1")
    for _ in range(3):
        api.request("POST", "/devicecontrol/operations/", json={"deviceId": "d1", "c8y_Restart": {}})
    page = api.request("GET", "/devicecontrol/operations/?pageSize=1").json()
    assert page["self"] == "http://tether/devicecontrol/operations?pageSize=1"
    assert page["next"] == "http://tether/devicecontrol/operations?pageSize=1&currentPage=2"
    listing = api.request("GET", "/v0/operations?limit=1").json()["content"]
    assert listing["next"] == "http://tether/v0/operations/?limit=1&offset=1"


@pytest.mark.parametrize("path", ["/devicecontrol/operations/", "/v0/operations", "/devicecontrol/operations/1/"])
def test_a_method_the_route_does_not_serve_is_its_405_at_either_form(api: Api, path: str) -> None:
    response = api.request("PATCH", path)
    assert response.status_code == 405
    assert response.headers["Allow"] in ("GET, POST", "GET, POST, DELETE", "GET, PUT")


def test_an_unknown_path_is_a_404_at_either_form(api: Api) -> None:
    assert api.request("GET", "/v0/nothing").status_code == 404
    assert api.request("GET", "/v0/nothing/").status_code == 404
    assert api.request("GET", "/devicecontrol/operations//").status_code == 404
