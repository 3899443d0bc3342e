"""The sandbox against Procore's published API description (``sandbox/openapi/``).

Two directions: every route the sandbox serves is a documented operation and answers with bodies
its documented response schema accepts; and the contract checker itself catches what it must
(undeclared fields, wrong types, missing parameters), so a client test that ends with "no
violations" means something.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from sandbox.app import create_app
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.contract import find_operation, operations, query_dict, validate_request, validate_response

CREDENTIALS = {"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"}
VENDOR = {"name": "Acme", "country_code": "US", "state_code": "CA", "origin_id": "ERP-1", "is_active": True}
# Every operation the sandbox serves, by resource, as Procore's operationIds name them.
SERVED = (
    "OauthTokenPost",
    "RestV10CompaniesGet",
    # vendors
    "RestV10VendorsGet",
    "RestV10VendorsPost",
    "RestV10VendorsSyncPatch",
    "RestV10VendorsIdGet",
    "RestV10VendorsIdPatch",
    # projects
    "RestV11ProjectsGet",
    "RestV10ProjectsIdGet",
    "RestV10ProjectsIdPatch",
    "RestV10ProjectsPost",
    "RestV10ProjectsSyncPatch",
    # standard cost codes and cost types
    "RestV10StandardCostCodeListsGet",
    "RestV10StandardCostCodesGet",
    "RestV10StandardCostCodesSyncPatch",
    "RestV10LineItemTypesGet",
    "RestV10LineItemTypesSyncPatch",
    # project cost codes, sub jobs, WBS codes
    "RestV10CostCodesGet",
    "RestV10CostCodesSyncPatch",
    "RestV10SubJobsGet",
    "RestV10SubJobsSyncPatch",
    "RestV10ProjectsProjectIdWorkBreakdownStructureWbsCodesGet",
    "RestV10ProjectsProjectIdWorkBreakdownStructureWbsCodesBulkCreatePatch",
    # original budget
    "RestV10BudgetLineItemsSyncPost",
    "RestV10BudgetViewsGet",
    "RestV10BudgetViewsBudgetViewIdDetailRowsGet",
    # users
    "RestV13CompaniesCompanyIdUsersGet",
    "RestV13CompaniesCompanyIdUsersSyncPatch",
    # prime contracts
    "RestV10PrimeContractPost",
    "RestV10PrimeContractIdGet",
    "RestV10PrimeContractIdPatch",
    "RestV10PrimeContractsGet",
    "RestV10PrimeContractsPrimeContractIdLineItemsGet",
    "RestV10PrimeContractsPrimeContractIdLineItemsSyncPatch",
    # subcontracts
    "RestV10WorkOrderContractsGet",
    "RestV10WorkOrderContractsSyncPatch",
    "RestV10WorkOrderContractsWorkOrderContractIdLineItemsGet",
    "RestV10WorkOrderContractsWorkOrderContractIdLineItemsSyncPatch",
    # purchase orders
    "RestV10PurchaseOrderContractsGet",
    "RestV10PurchaseOrderContractsSyncPatch",
    "RestV10PurchaseOrderContractsPurchaseOrderContractIdLineItemsGet",
    "RestV10PurchaseOrderContractsPurchaseOrderContractIdLineItemsSyncPatch",
    # direct costs
    "RestV11ProjectsProjectIdDirectCostsGet",
    "RestV10ProjectsProjectIdDirectCostsSyncPatch",
    "RestV10ProjectsProjectIdDirectCostsLineItemsGet",
    "RestV10ProjectsProjectIdDirectCostsLineItemsSyncPatch",
    # change orders, their lines and packages
    "RestV10ProjectsProjectIdCommitmentChangeOrdersGet",
    "RestV10ProjectsProjectIdCommitmentChangeOrdersPost",
    "RestV10ProjectsProjectIdCommitmentChangeOrdersIdGet",
    "RestV10ProjectsProjectIdCommitmentChangeOrdersIdPatch",
    "RestV10ProjectsProjectIdCommitmentChangeOrdersIdDelete",
    "RestV10ProjectsProjectIdPrimeChangeOrdersGet",
    "RestV10ProjectsProjectIdPrimeChangeOrdersPost",
    "RestV10ProjectsProjectIdPrimeChangeOrdersIdGet",
    "RestV10ProjectsProjectIdPrimeChangeOrdersIdPatch",
    "RestV10ProjectsProjectIdPrimeChangeOrdersIdDelete",
    "RestV20CompaniesCompanyIdProjectsProjectIdCommitmentChangeOrdersCommitmentChangeOrderIdLineItemsGet",
    "RestV20CompaniesCompanyIdProjectsProjectIdCommitmentChangeOrdersCommitmentChangeOrderIdLineItemsPost",
    "RestV20CompaniesCompanyIdProjectsProjectIdCommitmentChangeOrdersCommitmentChangeOrderIdLineItemsIdGet",
    "RestV20CompaniesCompanyIdProjectsProjectIdCommitmentChangeOrdersCommitmentChangeOrderIdLineItemsIdPatch",
    "RestV20CompaniesCompanyIdProjectsProjectIdCommitmentChangeOrdersCommitmentChangeOrderIdLineItemsIdDelete",
    "RestV20CompaniesCompanyIdProjectsProjectIdPrimeChangeOrdersPrimeChangeOrderIdLineItemsGet",
    "RestV20CompaniesCompanyIdProjectsProjectIdPrimeChangeOrdersPrimeChangeOrderIdLineItemsPost",
    "RestV20CompaniesCompanyIdProjectsProjectIdPrimeChangeOrdersPrimeChangeOrderIdLineItemsIdGet",
    "RestV20CompaniesCompanyIdProjectsProjectIdPrimeChangeOrdersPrimeChangeOrderIdLineItemsIdPatch",
    "RestV20CompaniesCompanyIdProjectsProjectIdPrimeChangeOrdersPrimeChangeOrderIdLineItemsIdDelete",
    "RestV10ChangeOrderPackagesGet",
    "RestV10ChangeOrderPackagesIdGet",
    # budget changes and budget modifications
    "RestV10ProjectsProjectIdBudgetChangesGet",
    "RestV10ProjectsProjectIdBudgetChangesPost",
    "RestV10ProjectsProjectIdBudgetChangesIdGet",
    "RestV10ProjectsProjectIdBudgetChangesIdPatch",
    "RestV10ProjectsProjectIdBudgetChangesIdDelete",
    "RestV20CompaniesCompanyIdProjectsProjectIdBudgetChangesAdjustmentLineItemsGet",
    "RestV10ProjectsProjectIdBudgetModificationsGet",
    "RestV10ProjectsProjectIdBudgetModificationsPost",
    "RestV10ProjectsProjectIdBudgetModificationsIdGet",
    "RestV10ProjectsProjectIdBudgetModificationsIdPatch",
    "RestV10ProjectsProjectIdBudgetModificationsIdDelete",
    # Resource Planning (workforce-planning v2)
    "RestV10Workforce-planningV2CompaniesCompanyIdGroupsGet",
    "RestV10Workforce-planningV2CompaniesCompanyIdGroupsPost",
    "RestV10Workforce-planningV2CompaniesCompanyIdPeopleGet",
    "RestV10Workforce-planningV2CompaniesCompanyIdPeoplePost",
    "RestV10Workforce-planningV2CompaniesCompanyIdPeoplePersonIdGet",
    "RestV10Workforce-planningV2CompaniesCompanyIdPeoplePersonIdPost",
    "RestV10Workforce-planningV2CompaniesCompanyIdPeoplePersonIdDelete",
    "RestV10Workforce-planningV2CompaniesCompanyIdProjectsGet",
    "RestV10Workforce-planningV2CompaniesCompanyIdProjectsPost",
    "RestV10Workforce-planningV2CompaniesCompanyIdProjectsProjectIdGet",
    "RestV10Workforce-planningV2CompaniesCompanyIdProjectsProjectIdPost",
    "RestV10Workforce-planningV2CompaniesCompanyIdProjectsProjectIdDelete",
    # webhooks: hooks, triggers, deliveries
    "RestV10WebhooksHooksGet",
    "RestV10WebhooksHooksPost",
    "RestV10WebhooksHooksIdPatch",
    "RestV10WebhooksHooksIdDelete",
    "RestV10WebhooksHooksHookIdTriggersGet",
    "RestV10WebhooksHooksHookIdTriggersPost",
    "RestV10WebhooksHooksHookIdTriggersIdDelete",
    "RestV10WebhooksHooksHookIdTriggersBulkPost",
    "RestV10WebhooksHooksHookIdTriggersBulkDelete",
    "RestV10WebhooksHooksHookIdDeliveriesGet",
)


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(SandboxConfig(), ManualClock()))


def served_operations() -> set[tuple[str, str]]:
    app = create_app(SandboxConfig(), ManualClock())
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and not route.path.startswith("/_sandbox/")
        for method in route.methods
    }


# --- routes and catalog ----------------------------------------------------------------------


def test_every_route_is_a_documented_operation_and_back() -> None:
    catalog = {(operation.method, operation.path) for operation in operations()}
    assert served_operations() == catalog


def test_the_copied_operations_are_the_ones_served() -> None:
    assert sorted(operation.operation_id for operation in operations()) == sorted(SERVED)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_fastapi_documentation_routes_are_off(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "operation_id"),
    [
        ("GET", "/rest/v1.0/vendors/123", "RestV10VendorsIdGet"),
        ("PATCH", "/rest/v1.0/vendors/123", "RestV10VendorsIdPatch"),
        ("PATCH", "/rest/v1.0/vendors/sync", "RestV10VendorsSyncPatch"),
        ("patch", "/rest/v1.0/vendors/sync/", "RestV10VendorsSyncPatch"),
        ("GET", "/rest/v1.0/vendors", "RestV10VendorsGet"),
        ("POST", "/oauth/token", "OauthTokenPost"),
    ],
)
def test_find_operation_prefers_literal_segments(method: str, path: str, operation_id: str) -> None:
    operation = find_operation(method, path)
    assert operation is not None and operation.operation_id == operation_id


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/rest/v1.0/vendors/1"), ("GET", "/rest/v1.0/projects")])
def test_find_operation_knows_only_the_copied_operations(method: str, path: str) -> None:
    assert find_operation(method, path) is None


# --- requests --------------------------------------------------------------------------------

VENDORS = "/rest/v1.0/vendors"
SYNC = "/rest/v1.0/vendors/sync"
A_DAY = "2026-01-01T00:00:00Z...2026-01-02T00:00:00Z"
POC = "/rest/v1.0/purchase_order_contracts"
WOC_LINES = "/rest/v1.0/work_order_contracts/8/line_items/sync"
PRIME_LINES = "/rest/v1.0/prime_contracts/8/line_items/sync"
BULK_CREATE = "/rest/v1.0/projects/7/work_breakdown_structure/wbs_codes/bulk_create"
BUDGET_SYNC = "/rest/v1.0/budget_line_items/sync"
SUB_JOB = {"code": "01", "name": "Phase 1"}
COST_CODE = {"code": "01-001", "name": "General Requirements"}
SEGMENT_ITEM = {"segment_id": 2, "segment_item_id": 3}

GOOD_REQUESTS: list[tuple[str, str, dict[str, Any], Any]] = [
    ("POST", "/oauth/token", {}, CREDENTIALS),
    ("GET", "/rest/v1.0/companies", {}, None),
    ("GET", "/rest/v1.0/companies", {"page": "1", "per_page": "100"}, None),
    ("GET", VENDORS, {"company_id": "1", "page": "2", "per_page": "500", "filters[updated_at]": A_DAY}, None),
    ("GET", VENDORS, {"company_id": "1", "filters[origin_id]": "ERP-1", "filters[id][]": ["1", "2"]}, None),
    ("GET", f"{VENDORS}/562949953421313", {"company_id": "1"}, None),
    ("POST", VENDORS, {}, {"company_id": 1, "vendor": VENDOR}),
    ("PATCH", f"{VENDORS}/7", {}, {"company_id": 1, "vendor": {"name": "Acme", "city": "Fresno"}}),
    # trade_ids items are the derivation's "(nested object)" placeholder, read as "any value".
    ("PATCH", SYNC, {}, {"company_id": 1, "updates": [VENDOR, {"id": 7, "name": "B", "trade_ids": [1]}]}),
    # "You must supply either a company_id or project_id": one of them is enough.
    ("GET", "/rest/v1.0/line_item_types", {"company_id": "1"}, None),
    ("GET", "/rest/v1.0/line_item_types", {"project_id": "7"}, None),
    # Every sync item may carry id (the matching table), even where a derived schema omits it.
    ("PATCH", f"{POC}/sync", {}, {"project_id": 7, "updates": [{"id": 8, "title": "PO"}]}),
    ("PATCH", WOC_LINES, {"project_id": "7"}, {"updates": [{"id": 9, "amount": "10"}]}),
    # uom's "enum" is a sentence, read as any string.
    ("PATCH", PRIME_LINES, {"project_id": "7"}, {"updates": [{"amount": "10", "uom": "EA", "wbs_code_id": 3}]}),
    ("PATCH", "/rest/v1.0/sub_jobs/sync", {"project_id": "7"}, {"project_id": 7, "updates": [SUB_JOB]}),
    ("PATCH", "/rest/v1.0/cost_codes/sync", {"project_id": "7", "sub_job_id": "9"}, {"updates": [COST_CODE]}),
    ("PATCH", BULK_CREATE, {}, {"bulk": [{"description": "x", "segment_items": [SEGMENT_ITEM]}]}),
    ("POST", BUDGET_SYNC, {}, {"project_id": 7, "budget_line_items": [{"wbs_code_id": 3}]}),
    ("GET", "/rest/v1.0/budget_views/5/detail_rows", {"project_id": "7", "cost_code_id[]": ["3"]}, None),
]


@pytest.mark.parametrize(("method", "path", "query", "body"), GOOD_REQUESTS)
def test_good_requests_validate(method: str, path: str, query: dict[str, Any], body: Any) -> None:
    assert validate_request(method, path, query, body) == []


def sync_body(*updates: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"company_id": 1, "updates": list(updates), **extra}


BAD_BODIES: list[tuple[str, str, Any, str]] = [
    ("POST", VENDORS, {"company_id": 1, "vendor": {**VENDOR, "colour": "red"}}, "body.vendor: property 'colour'"),
    ("PATCH", SYNC, sync_body(VENDOR, {"nmae": "typo"}), "body.updates[1]: property 'nmae'"),
    ("PATCH", SYNC, sync_body(dry_run=True), "body: property 'dry_run'"),
    ("POST", VENDORS, {"company_id": 1, "vendor": {"name": 123}}, "body.vendor.name: 123 is not of type 'string'"),
    ("PATCH", SYNC, {"company_id": "1", "updates": []}, "body.company_id: '1' is not of type 'integer'"),
    ("PATCH", SYNC, sync_body({"origin_id": 5}), "body.updates[0].origin_id: 5 is not of type 'string'"),
    ("PATCH", SYNC, {"updates": []}, "'company_id' is a required property"),
    ("PATCH", f"{VENDORS}/7", {"company_id": 1, "vendor": {"city": "Fresno"}}, "'name' is a required property"),
    ("POST", VENDORS, None, "a request body is required"),
    ("POST", "/oauth/token", {**CREDENTIALS, "grant_type": "password"}, "body.grant_type"),
    # The id allowance is for sync items only, and types are still checked.
    ("PATCH", BULK_CREATE, {"bulk": [{"id": 1}]}, "body.bulk[0]: property 'id'"),
    ("PATCH", WOC_LINES, {"updates": [{"amount": 10}]}, "body.updates[0].amount: 10 is not of type 'string'"),
    ("PATCH", "/rest/v1.0/line_item_types/sync", sync_body({"name": "L", "base_type": "labor"}), "'labor'"),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), BAD_BODIES)
def test_bad_bodies_are_reported(method: str, path: str, body: Any, expected: str) -> None:
    problems = validate_request(method, path, {}, body)
    assert any(expected in problem for problem in problems), problems


BAD_PARAMETERS: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", VENDORS, {}, "query parameter 'company_id' is required"),
    ("GET", VENDORS, {"company_id": "one"}, "'one' is not an integer"),
    ("GET", VENDORS, {"company_id": "1", "filters[updated_since]": "x"}, "'filters[updated_since]' is not declared"),
    ("GET", VENDORS, {"company_id": "1", "sort": "id"}, "'id' is not one of"),
    ("GET", f"{VENDORS}/abc", {"company_id": "1"}, "path parameter 'id': 'abc' is not an integer"),
    ("DELETE", f"{VENDORS}/1", {}, "is not an operation in Procore's catalog"),
    ("GET", "/rest/v1.0/line_item_types", {}, "query parameter 'company_id' is required"),
    ("GET", "/rest/v1.0/sub_jobs", {}, "query parameter 'project_id' is required"),
]


@pytest.mark.parametrize(("method", "path", "query", "expected"), BAD_PARAMETERS)
def test_bad_parameters_are_reported(method: str, path: str, query: dict[str, Any], expected: str) -> None:
    problems = validate_request(method, path, query, None)
    assert any(expected in problem for problem in problems), problems


def test_query_dict_turns_repeated_names_into_lists() -> None:
    pairs = [("company_id", "1"), ("filters[id][]", "1"), ("filters[id][]", "2")]
    assert query_dict(pairs) == {"company_id": "1", "filters[id][]": ["1", "2"]}


# --- responses -------------------------------------------------------------------------------


def test_sandbox_responses_match_the_documented_schemas(client: TestClient) -> None:
    token = client.post("/oauth/token", data=CREDENTIALS)
    headers = {"Authorization": f"Bearer {token.json()['access_token']}", "Procore-Company-Id": "1"}
    created = client.post(VENDORS, json={"company_id": 1, "vendor": VENDOR}, headers=headers)
    vendor = f"{VENDORS}/{created.json()['id']}"
    update = {"company_id": 1, "vendor": {"name": "Acme 2"}}
    calls = [
        ("POST", "/oauth/token", token),
        ("GET", "/rest/v1.0/companies", client.get("/rest/v1.0/companies", headers=headers)),
        ("GET", VENDORS, client.get(VENDORS, params={"company_id": 1}, headers=headers)),
        ("GET", vendor, client.get(vendor, params={"company_id": 1}, headers=headers)),
        ("POST", VENDORS, created),
        ("PATCH", vendor, client.patch(vendor, json=update, headers=headers)),
        ("PATCH", SYNC, client.patch(SYNC, json=sync_body({"origin_id": "ERP-1"}, {"name": ""}), headers=headers)),
    ]
    for method, path, response in calls:
        assert response.is_success, (method, path, response.text)
        assert validate_response(method, path, response.status_code, response.json()) == [], (method, path)
    assert client.app.state.contract_violations == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "expected"),
    [
        ("PATCH", SYNC, 200, {"entities": {}, "errors": []}, "response 200.entities: {} is not of type 'array'"),
        ("GET", VENDORS, 200, {"id": 1}, "is not of type 'array'"),
        ("POST", "/oauth/token", 200, {"access_token": "t", "expires_in": "5400"}, "response 200.expires_in"),
        ("POST", VENDORS, 200, {"id": 1}, "status 200 is not documented for RestV10VendorsPost"),
    ],
)
def test_bad_responses_are_reported(method: str, path: str, status: int, body: Any, expected: str) -> None:
    problems = validate_response(method, path, status, body)
    assert any(expected in problem for problem in problems), problems


def test_responses_may_show_unset_attributes_as_null() -> None:
    project = {"id": 1, "name": "Tower", "project_number": None, "total_value": None, "parent_job": None}
    assert validate_response("GET", "/rest/v1.0/projects/1", 200, project) == []
    wrong = validate_response("GET", "/rest/v1.0/projects/1", 200, {**project, "name": 5})
    assert any("200.name: 5 is not of type 'string', 'null'" in problem for problem in wrong), wrong


def test_undocumented_error_statuses_are_not_checked() -> None:
    assert validate_response("POST", "/rest/v1.0/vendors", 422, {"errors": {"name": ["can't be blank"]}}) == []
