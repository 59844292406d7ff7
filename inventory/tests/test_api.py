import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import close_old_connections
from rest_framework.test import APIClient

from accounts.tests.factories import bearer_client
from inventory import services
from inventory.models import Product, Store
from inventory.tests.factories import ProductFactory, StoreFactory

pytestmark = pytest.mark.django_db

STORES = "/api/v1/stores"
PRODUCTS = "/api/v1/products"
STORE_BODY = {"name": "Corner shop", "address": "Torstr. 1, Berlin", "lat": 52.53, "lng": 13.40}


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def error_fields(response) -> set[str]:
    return {e["field"] for e in problem(response, 400, "validation_error")["errors"]}


def product_body(store, **change):
    return {"store_id": str(store.pk), "sku": "OAT-1", "name": "Oat milk", "price": 249, "currency": "EUR",
            "stock": 12, **change}  # fmt: skip


# --- stores ---------------------------------------------------------------------------------------


def test_store_list_is_paginated(customer_api):
    StoreFactory.create_batch(3)

    first = customer_api.get(STORES, {"limit": 2})
    second = customer_api.get(first.json()["next"])

    assert first.status_code == second.status_code == 200
    assert set(first.json()) == {"results", "next"}
    assert len(first.json()["results"]) == 2 and len(second.json()["results"]) == 1
    assert second.json()["next"] is None
    ids = {s["id"] for s in first.json()["results"] + second.json()["results"]}
    assert ids == {str(pk) for pk in Store.objects.values_list("pk", flat=True)}
    assert set(first.json()["results"][0]) == {"id", "name", "address", "lat", "lng", "is_active"}


def test_store_detail(customer_api, store):
    response = customer_api.get(f"{STORES}/{store.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": str(store.pk), "name": store.name, "address": store.address, "lat": store.lat, "lng": store.lng,
        "is_active": True,
    }  # fmt: skip


@pytest.mark.parametrize("path", [str(uuid.uuid4()), "not-a-uuid", "123", "%00"])
def test_unknown_store_is_404(customer_api, path):
    problem(customer_api.get(f"{STORES}/{path}"), 404, "not_found")


def test_staff_create_a_store(staff_api):
    response = staff_api.post(STORES, STORE_BODY, format="json")

    assert response.status_code == 201, response.json()
    assert response.json() == {**STORE_BODY, "id": response.json()["id"], "is_active": True}
    assert Store.objects.filter(pk=response.json()["id"], name="Corner shop").exists()


def test_customers_may_not_create_stores(customer_api):
    problem(customer_api.post(STORES, STORE_BODY, format="json"), 403, "permission_denied")
    assert not Store.objects.exists()


def test_catalog_needs_credentials(store, product):
    anonymous = APIClient()

    for response in [
        anonymous.get(STORES), anonymous.get(f"{STORES}/{store.pk}"), anonymous.get(PRODUCTS),
        anonymous.get(f"{PRODUCTS}/{product.pk}"), anonymous.post(STORES, STORE_BODY, format="json"),
        anonymous.post(f"{PRODUCTS}/{product.pk}/restock", {"quantity": 1}, format="json"),
    ]:  # fmt: skip
        problem(response, 401, "not_authenticated")
    assert Product.objects.get(pk=product.pk).on_hand == 10


@pytest.mark.parametrize(
    "change, field",
    [
        ({"lat": 91}, "lat"), ({"lat": -90.0001}, "lat"), ({"lng": 181}, "lng"), ({"lng": "east"}, "lng"),
        ({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"address": None}, "address"),
        ({"is_active": "maybe"}, "is_active"), ({"lat": None}, "lat"), ({"lng": True}, "lng"),
        ({"lat": "52.5"}, "lat"),
    ],
    ids=str,
)  # fmt: skip
def test_store_validation_errors_name_the_field(staff_api, change, field):
    assert error_fields(staff_api.post(STORES, {**STORE_BODY, **change}, format="json")) == {field}
    assert not Store.objects.exists()


@pytest.mark.parametrize("raw", ['{"lat": NaN, "lng": 1, "name": "a", "address": "b"}', '{"lat": Infinity}', "{"])
def test_store_create_refuses_non_json_numbers(staff_api, raw):
    response = staff_api.post(STORES, raw, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert not Store.objects.exists()


def test_store_create_with_missing_fields_names_them_all(staff_api):
    assert error_fields(staff_api.post(STORES, {}, format="json")) == {"name", "address", "lat", "lng"}


# --- products -------------------------------------------------------------------------------------


def test_product_list_filters_by_store_and_search(customer_api, store):
    milk = ProductFactory(store=store, name="Oat Milk")
    ProductFactory(store=store, name="Bread")
    ProductFactory(name="Oat Milk elsewhere")

    in_store = customer_api.get(PRODUCTS, {"store": str(store.pk)})
    searched = customer_api.get(PRODUCTS, {"store": str(store.pk), "search": "milk"})

    assert in_store.status_code == searched.status_code == 200
    assert len(in_store.json()["results"]) == 2
    assert [p["id"] for p in searched.json()["results"]] == [str(milk.pk)]
    assert set(searched.json()) == {"results", "next"}


def test_product_list_is_paginated(customer_api, store):
    ProductFactory.create_batch(5, store=store)

    seen, url = [], PRODUCTS + "?limit=2"
    while url:
        page = customer_api.get(url).json()
        seen += [p["id"] for p in page["results"]]
        url = page["next"]

    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize("query", [{"store": "nope"}, {"store": "123"}, {"search": "x" * 101}])
def test_product_list_refuses_bad_filters(customer_api, query):
    assert error_fields(customer_api.get(PRODUCTS, query)) == set(query)


def test_product_list_with_a_bad_cursor_is_400(customer_api, product):
    problem(customer_api.get(PRODUCTS, {"cursor": "garbage"}), 400, "invalid_cursor")


def test_product_detail_shows_available(customer_api, product):
    services.reservations_hold(order_id=uuid.uuid4(), lines={product.pk: 4})

    response = customer_api.get(f"{PRODUCTS}/{product.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": str(product.pk), "store_id": str(product.store_id), "sku": product.sku, "name": product.name,
        "price": 1250, "currency": "EUR", "available": 6, "is_active": True,
    }  # fmt: skip


@pytest.mark.parametrize("path", ["999999", "abc", "1.5", "-1", "²", "٣", "99999999999999999999999", "1e3", "0x1"])
def test_unknown_or_non_numeric_product_is_404(customer_api, path):
    problem(customer_api.get(f"{PRODUCTS}/{path}"), 404, "not_found")


def test_staff_create_a_product(staff_api, store):
    response = staff_api.post(PRODUCTS, product_body(store), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    product = Product.objects.get(pk=body["id"])
    assert body == {"id": str(product.pk), "store_id": str(store.pk), "sku": "OAT-1", "name": "Oat milk",
                    "price": 249, "currency": "EUR", "available": 12, "is_active": True}  # fmt: skip
    assert (product.on_hand, product.reserved) == (12, 0)


def test_customers_may_not_create_products(customer_api, store):
    problem(customer_api.post(PRODUCTS, product_body(store), format="json"), 403, "permission_denied")
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"store_id": str(uuid.uuid4())}, "store_id"), ({"store_id": "not-a-uuid"}, "store_id"),
        ({"store_id": 5}, "store_id"), ({"store_id": None}, "store_id"), ({"price": -1}, "price"),
        ({"price": "cheap"}, "price"), ({"price": 12.5}, "price"), ({"price": 10**30}, "price"),
        ({"currency": "eur"}, "currency"), ({"currency": "EURO"}, "currency"), ({"stock": -1}, "stock"),
        ({"stock": "many"}, "stock"), ({"stock": 10**12}, "stock"), ({"sku": ""}, "sku"), ({"sku": "x" * 65}, "sku"),
        ({"name": ["x"]}, "name"),
    ],
    ids=str,
)  # fmt: skip
def test_product_validation_errors_name_the_field(staff_api, store, change, field):
    assert error_fields(staff_api.post(PRODUCTS, product_body(store, **change), format="json")) == {field}
    assert not Product.objects.exists()


def test_duplicate_sku_in_the_same_store_is_400(staff_api, store):
    ProductFactory(store=store, sku="OAT-1")

    assert error_fields(staff_api.post(PRODUCTS, product_body(store), format="json")) == {"sku"}
    assert Product.objects.count() == 1


def test_product_create_refuses_a_taken_sku_with_a_domain_error(store):
    ProductFactory(store=store, sku="OAT-1")

    with pytest.raises(services.SkuTaken):
        services.product_create(store=store, sku="OAT-1", name="Oat milk", price=249, currency="EUR", stock=1)
    assert Product.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_sku_give_one_product_and_400s_never_a_500(staff):
    # given one store and eight staff requests for the same SKU, released at the same instant
    store = StoreFactory()
    clients = [bearer_client(staff) for _ in range(8)]
    barrier = Barrier(len(clients))

    def create(client):
        try:
            barrier.wait()
            return client.post(PRODUCTS, product_body(store), format="json").status_code
        finally:
            close_old_connections()

    # when they race past any check made before the insert
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        statuses = sorted(pool.map(create, clients))

    # then the unique constraint decides: one product, the others answered as invalid input
    assert statuses == [201] + [400] * 7
    assert Product.objects.filter(store=store, sku="OAT-1").count() == 1


def test_same_sku_in_another_store_is_fine(staff_api, store):
    ProductFactory(sku="OAT-1")

    assert staff_api.post(PRODUCTS, product_body(store), format="json").status_code == 201


# --- restock --------------------------------------------------------------------------------------


def test_staff_restock_a_product(staff_api, product):
    services.reservations_hold(order_id=uuid.uuid4(), lines={product.pk: 3})

    response = staff_api.post(f"{PRODUCTS}/{product.pk}/restock", {"quantity": 5}, format="json")

    assert response.status_code == 200
    assert response.json()["available"] == 12
    product.refresh_from_db()
    assert (product.on_hand, product.reserved) == (15, 3)


@pytest.mark.parametrize("quantity", [0, -1, "text", None, 1.5, True, 10_000_001, "", [1], {"n": 1}], ids=repr)
def test_restock_refuses_a_bad_quantity(staff_api, product, quantity):
    response = staff_api.post(f"{PRODUCTS}/{product.pk}/restock", {"quantity": quantity}, format="json")

    assert error_fields(response) == {"quantity"}
    assert Product.objects.get(pk=product.pk).on_hand == 10


def test_restock_without_a_quantity_is_400(staff_api, product):
    assert error_fields(staff_api.post(f"{PRODUCTS}/{product.pk}/restock", {}, format="json")) == {"quantity"}


def test_restock_past_the_stock_limit_is_409_not_500(staff_api, store):
    full = ProductFactory(store=store, on_hand=services.MAX_ON_HAND - 10)

    response = staff_api.post(f"{PRODUCTS}/{full.pk}/restock", {"quantity": 11}, format="json")

    problem(response, 409, "stock_limit_exceeded")
    assert Product.objects.get(pk=full.pk).on_hand == services.MAX_ON_HAND - 10


@pytest.mark.parametrize("path", ["999999", "abc", "²"])
def test_restock_of_an_unknown_product_is_404(staff_api, path):
    problem(staff_api.post(f"{PRODUCTS}/{path}/restock", {"quantity": 1}, format="json"), 404, "not_found")


def test_customers_may_not_restock(customer_api, product):
    response = customer_api.post(f"{PRODUCTS}/{product.pk}/restock", {"quantity": 5}, format="json")

    problem(response, 403, "permission_denied")
    assert Product.objects.get(pk=product.pk).on_hand == 10


def test_customers_learn_nothing_from_restocking_unknown_products(customer_api):
    problem(customer_api.post(f"{PRODUCTS}/999999/restock", {"quantity": 1}, format="json"), 403, "permission_denied")
