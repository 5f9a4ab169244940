"""/openapi.json describes both APIs: every route's bodies, its statuses with their error body, and its security.

The fuzzer (tests/e2e/test_openapi_contract.py) holds the running controller to this document; these tests make
sure the document keeps saying enough to hold it to.
"""

from typing import Any

import pytest

from tests.controller.api_harness import Api

OPERATION_TYPE = "application/vnd.com.nsn.cumulocity.operation+json"
COLLECTION_TYPE = "application/vnd.com.nsn.cumulocity.operationcollection+json"
JSON = "application/json"

STATUSES = {
    ("post", "/v0/operations/"): {"201", "400", "401", "403", "413", "415", "507"},
    ("get", "/v0/operations/"): {"200", "400", "401"},
    ("get", "/v0/operations/{operation_id}/"): {"200", "401", "404"},
    ("post", "/v0/operations/{operation_id}/cancel/"): {"200", "401", "403", "404", "409", "507"},
    ("get", "/v0/operations/{operation_id}/events"): {"200", "401", "404"},
    ("get", "/v0/operations/{operation_id}/devices/"): {"200", "400", "401", "404"},
    ("put", "/v0/operations/{operation_id}/devices/{device_id}/artifact"): {"201", "401", "413", "507"},
    ("get", "/v0/operations/{operation_id}/devices/{device_id}/artifact"): {"200", "401", "404"},
    ("get", "/v0/devices/"): {"200", "400", "401"},
    ("get", "/v0/devices/{device_id}/"): {"200", "401", "404"},
    ("post", "/devicecontrol/operations"): {"201", "400", "401", "403", "413", "415", "422", "507"},
    ("get", "/devicecontrol/operations"): {"200", "400", "401"},
    ("delete", "/devicecontrol/operations"): {"204", "400", "401", "403", "507"},
    ("get", "/devicecontrol/operations/{operation_id}"): {"200", "401", "404"},
    ("put", "/devicecontrol/operations/{operation_id}"): {
        *("200", "400", "401", "403", "404", "409", "413", "415", "507"),
    },
    ("get", "/healthz"): {"200"},
    ("get", "/readyz"): {"200", "503"},
    ("get", "/metrics"): {"200", "401"},
}
"""Exactly the statuses each operation answers with (errors.py's table, the routes' own checks)."""


@pytest.fixture
def document(api: Api) -> dict[str, Any]:
    response = api.request("GET", "/openapi.json", key=None)
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): spec for path, methods in document["paths"].items() for method, spec in methods.items()}


def schema(document: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][reference["$ref"].rsplit("/", 1)[1]]
    return found


def test_every_operation_documents_exactly_the_statuses_it_answers(document: dict[str, Any]) -> None:
    documented = {key: set(spec["responses"]) for key, spec in operations(document).items()}
    assert documented == STATUSES
    assert "HTTPValidationError" not in document["components"]["schemas"]  # 422 is never sent: errors are 400s


def test_every_error_status_has_the_error_body(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["message"]
    assert set(error["properties"]) == {"message", "errors"}
    field_error = schema(document, error["properties"]["errors"]["items"])
    assert set(field_error["required"]) == {"field", "message"}
    for key, spec in operations(document).items():
        for status, response in spec["responses"].items():
            if status.startswith("4") or status == "507":
                assert response["content"] == {JSON: {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}, key
    assert "WWW-Authenticate" in operations(document)[("get", "/v0/devices/")]["responses"]["401"]["headers"]


def test_bearer_and_basic_everywhere_but_on_probes_and_uploads(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {**schemes["HTTPBearer"], "type": "http", "scheme": "bearer"}
    assert schemes["HTTPBasic"] == {**schemes["HTTPBasic"], "type": "http", "scheme": "basic"}
    assert schemes["UploadToken"]["scheme"] == "bearer"
    for (method, path), spec in operations(document).items():
        if (method, path) == ("put", "/v0/operations/{operation_id}/devices/{device_id}/artifact"):
            assert spec["security"] == [{"UploadToken": []}]
        elif path in ("/healthz", "/readyz"):
            assert "security" not in spec  # probes say only whether the controller is up
        else:
            assert spec["security"] == [{"HTTPBearer": []}, {"HTTPBasic": []}], (method, path)


def test_devicecontrol_bodies_take_both_media_types(document: dict[str, Any]) -> None:
    by_key = operations(document)
    for key, model in [
        (("post", "/devicecontrol/operations"), "NewOperation"),
        (("put", "/devicecontrol/operations/{operation_id}"), "OperationUpdate"),
    ]:
        body = by_key[key]["requestBody"]
        assert body["required"] is True
        reference = {"schema": {"$ref": f"#/components/schemas/{model}"}}
        assert body["content"] == {JSON: reference, OPERATION_TYPE: reference}


def test_the_post_body_names_the_device_and_the_standard_fragments(document: dict[str, Any]) -> None:
    body = document["components"]["schemas"]["NewOperation"]
    assert body["required"] == ["deviceId"]
    assert {"deviceId", "description", "c8y_Restart", "c8y_Command", "c8y_SoftwareUpdate", "c8y_LogfileRequest"} <= set(
        body["properties"]
    )
    assert body["additionalProperties"]["type"] == "object"  # any other member is a custom fragment, an object
    assert "pattern" in body["propertyNames"]
    command = schema(document, body["properties"]["c8y_Command"]["anyOf"][0])
    assert command["required"] == ["text"]
    entry = schema(document, body["properties"]["c8y_SoftwareUpdate"]["anyOf"][0]["items"])
    assert entry["properties"]["action"]["enum"] == ["install", "delete"]
    lines = schema(document, body["properties"]["c8y_LogfileRequest"]["anyOf"][0])["properties"]["maximumLines"]
    assert (lines["minimum"], lines["maximum"]) == (1, 1_000_000)


def test_the_put_body_is_a_status_with_failed_a_reason_and_fragments(document: dict[str, Any]) -> None:
    body = document["components"]["schemas"]["OperationUpdate"]
    assert "required" not in body
    status = schema(document, body["properties"]["status"]["anyOf"][0])
    assert status["enum"] == ["PENDING", "EXECUTING", "SUCCESSFUL", "FAILED"]
    assert body["then"] == {"properties": {"status": {"const": "FAILED"}}, "required": ["status"]}
    assert body["additionalProperties"] is True  # a fragment is any JSON value; null removes it
    assert "pattern" in body["propertyNames"]


def test_answers_are_operations_and_collections_in_either_media_type(document: dict[str, Any]) -> None:
    by_key = operations(document)
    operation = {"schema": {"$ref": "#/components/schemas/Operation"}}
    collection = {"schema": {"$ref": "#/components/schemas/OperationCollection"}}
    created = by_key[("post", "/devicecontrol/operations")]["responses"]["201"]
    assert created["content"] == {JSON: operation, OPERATION_TYPE: operation}
    assert created["headers"]["Location"]["schema"]["format"] == "uri"
    for key in [
        ("get", "/devicecontrol/operations/{operation_id}"),
        ("put", "/devicecontrol/operations/{operation_id}"),
    ]:
        assert by_key[key]["responses"]["200"]["content"] == {JSON: operation, OPERATION_TYPE: operation}
    listed = by_key[("get", "/devicecontrol/operations")]["responses"]["200"]["content"]
    assert listed == {JSON: collection, COLLECTION_TYPE: collection}
    assert "content" not in by_key[("delete", "/devicecontrol/operations")]["responses"]["204"]


def test_the_operation_and_its_collection(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    operation = schemas["Operation"]
    assert set(operation["required"]) == {"id", "self", "deviceId", "status", "creationTime"}
    assert {"deviceName", "description", "failureReason", "bulkOperationId", "c8y_Command"} <= set(
        operation["properties"]
    )
    assert operation["additionalProperties"] is True  # fragments
    assert "anyOf" not in operation["properties"]["failureReason"]  # left out when absent, never null
    collection = schemas["OperationCollection"]
    assert set(collection["required"]) == {"self", "operations", "statistics"}
    assert {"prev", "next"} <= set(collection["properties"])
    statistics = schemas["PagingStatistics"]
    assert set(statistics["required"]) == {"pageSize", "currentPage"}
    assert {"totalPages", "totalElements"} <= set(statistics["properties"])


def test_the_interactive_documentation_is_served(api: Api) -> None:
    response = api.request("GET", "/docs", key=None)
    assert response.status_code == 200
    assert "/openapi.json" in response.text
