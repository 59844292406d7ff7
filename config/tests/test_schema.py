import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator


@pytest.mark.django_db
def test_openapi_schema_is_valid_and_warning_free(tmp_path):
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert "/api/v1/orders" in target.read_text()


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def resolve(schema, ref: dict) -> dict:
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]] if "$ref" in ref else ref


def test_every_list_is_documented_as_results_and_next_with_its_cursor(schema):
    lists = {"/api/v1/orders", "/api/v1/stores", "/api/v1/products", "/api/v1/drivers"}

    for path in lists:
        operation = schema["paths"][path]["get"]
        body = resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
        assert set(body["required"]) == {"results", "next"}, path
        assert body["properties"]["results"]["type"] == "array", path
        assert {"cursor", "limit"} <= {p["name"] for p in operation["parameters"]}, path


def test_every_operation_documents_its_problems_as_problem_json(schema):
    for name, operation in operations(schema):
        failures = {status: r for status, r in operation["responses"].items() if status >= "400"}
        assert {"429", "503"} <= set(failures), name
        for status, response in failures.items():
            assert list(response["content"]) == ["application/problem+json"], (name, status)
            assert resolve(schema, response["content"]["application/problem+json"]["schema"])["required"] == [
                "type", "title", "status", "detail", "code"
            ], (name, status)  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "statuses"),
    [
        ("POST /api/v1/auth/register", {"400", "409", "413", "415"}),
        ("POST /api/v1/auth/token", {"400", "401"}),
        ("GET /api/v1/me", {"401"}),
        ("GET /api/v1/orders", {"400", "401"}),
        ("POST /api/v1/orders", {"400", "401", "403", "409", "413", "415", "422"}),
        ("GET /api/v1/orders/{order_id}", {"401", "404"}),
        ("POST /api/v1/orders/{order_id}/cancel", {"401", "403", "404", "409"}),
        ("POST /api/v1/stores", {"400", "401", "403"}),
        ("POST /api/v1/products/{product_id}/restock", {"400", "401", "403", "404", "409"}),
        ("GET /api/v1/drivers/me/assignment", {"401", "403"}),
        ("POST /api/v1/assignments/{assignment_id}/accept", {"401", "403", "404", "409"}),
    ],
)
def test_the_problems_each_operation_can_answer_are_documented(schema, operation, statuses):
    documented = dict(operations(schema))[operation]["responses"]

    assert statuses <= set(documented)
    assert "500" not in documented
