"""Every bad input to the orders API answers the right 4xx problem and writes nothing."""

import json
import uuid

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import bearer_client
from inventory.models import Product, Reservation
from inventory.services import MAX_ON_HAND
from inventory.tests.factories import ProductFactory, StoreFactory
from orders import services
from orders.models import IdempotencyKey, Order, OutboxEvent, Payment
from orders.tests.helpers import assert_invariants, place_order, run_saga

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders"


def body_for(store, *lines, **change):
    body = {
        "store_id": str(store.pk),
        "items": [{"product_id": str(p.pk), "quantity": q} for p, q in lines],
        "delivery": {"address": "Torstr. 1, Berlin", "lat": 52.52, "lng": 13.40},
        "payment_token": "tok_ok",
    }
    return {**body, **change}


def post(api, body, key="key-1", **extra):
    if isinstance(body, str):
        return api.post(ORDERS, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key, **extra)
    return api.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    return body


def assert_nothing_written(*products):
    assert Order.objects.count() == 0
    assert Reservation.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    for product in products:
        assert Product.objects.get(pk=product.pk).reserved == 0


def bad_input(response, *products) -> set[str]:
    """400 validation_error, nothing written; returns the fields named in `errors`."""
    body = problem(response, 400, "validation_error")
    assert_nothing_written(*products)
    return {e["field"] for e in body["errors"]}


# --- create: quantities ---------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [0, -1, 1001, "text", 10**30, -(10**30), 1.5, None, True, "", [2]], ids=repr)
def test_bad_quantity(customer_api, store, product, quantity):
    response = post(customer_api, body_for(store, (product, quantity)))

    assert bad_input(response, product) == {"items.0.quantity"}


def test_quantity_bounds_are_inclusive(customer_api, store):
    big = ProductFactory(store=store, on_hand=5000)

    assert post(customer_api, body_for(store, (big, 1000))).status_code == 201
    assert post(customer_api, body_for(store, (big, 1)), key="key-2").status_code == 201


# --- create: products -----------------------------------------------------------------------------


def test_unknown_product(customer_api, store, product):
    body = body_for(store, (product, 1))
    body["items"].append({"product_id": "999999", "quantity": 1})

    response = post(customer_api, body)

    assert bad_input(response, product) == {"items.1.product_id"}
    assert response.json()["errors"][0]["code"] == "unknown_product"


@pytest.mark.parametrize(
    "product_id", ["abc", "", "-1", "1.0", "99999999999999999999", "x" * 33, None, 12.5, {"id": 1}, "²", "٣"], ids=repr
)
def test_malformed_product_id(customer_api, store, product, product_id):
    body = body_for(store, (product, 1))
    body["items"][0]["product_id"] = product_id

    response = post(customer_api, body)

    assert bad_input(response, product) == {"items.0.product_id"}


def test_product_id_may_be_a_json_number(customer_api, store, product):
    body = body_for(store, (product, 1))
    body["items"][0]["product_id"] = product.pk

    assert post(customer_api, body).status_code == 201


def test_inactive_product(customer_api, store, product):
    retired = ProductFactory(store=store, is_active=False)

    response = post(customer_api, body_for(store, (product, 1), (retired, 1)))

    assert bad_input(response, product, retired) == {"items.1.product_id"}
    assert response.json()["errors"][0]["code"] == "unknown_product"


def test_product_of_another_store(customer_api, store, product):
    elsewhere = ProductFactory(store=StoreFactory())

    response = post(customer_api, body_for(store, (elsewhere, 1), (product, 1)))

    assert bad_input(response, product, elsewhere) == {"items.0.product_id"}
    assert response.json()["errors"][0]["code"] == "wrong_store"


def test_duplicate_product_lines(customer_api, store, product):
    response = post(customer_api, body_for(store, (product, 1), (product, 2)))

    assert bad_input(response, product) == {"items.1.product_id"}
    assert response.json()["errors"][0]["code"] == "duplicate"


def test_duplicate_lines_spelled_differently(customer_api, store, product):
    body = body_for(store, (product, 1), (product, 2))
    body["items"][1]["product_id"] = product.pk  # the same product, as a number

    response = post(customer_api, body)

    assert bad_input(response, product) == {"items.1.product_id"}


def test_mixed_currencies_are_refused_not_summed(customer_api, store, product):
    dollars = ProductFactory(store=store, currency="USD")

    response = post(customer_api, body_for(store, (product, 1), (dollars, 1)))

    assert bad_input(response, product, dollars) == {"items.1.product_id"}
    assert response.json()["errors"][0]["code"] == "mixed_currency"


@pytest.mark.parametrize("spellings", [("1", "01"), ("7", "007"), ("1", 1)], ids=repr)
def test_duplicate_lines_with_leading_zeros(customer_api, store, spellings):
    product = ProductFactory(store=store, pk=int(spellings[0]))
    body = body_for(store, (product, 1), (product, 2))
    body["items"][0]["product_id"], body["items"][1]["product_id"] = spellings

    response = post(customer_api, body)

    assert bad_input(response, product) == {"items.1.product_id"}
    assert response.json()["errors"][0]["code"] == "duplicate"


def test_more_than_100_lines(customer_api, store):
    products = ProductFactory.create_batch(101, store=store)

    response = post(customer_api, body_for(store, *[(p, 1) for p in products]))

    assert bad_input(response, *products) == {"items"}


def test_exactly_100_lines_is_fine(customer_api, store):
    products = ProductFactory.create_batch(100, store=store)

    response = post(customer_api, body_for(store, *[(p, 1) for p in products]))

    assert response.status_code == 201
    assert len(response.json()["items"]) == 100


@pytest.mark.parametrize("items", [[], None, "all of them", {"product_id": "1"}, [None], ["1"], [{}]], ids=repr)
def test_bad_items(customer_api, store, product, items):
    response = post(customer_api, body_for(store, items=items))

    fields = bad_input(response, product)
    assert fields and all(f.startswith("items") for f in fields)


# --- create: store --------------------------------------------------------------------------------


@pytest.mark.parametrize("store_id", ["nope", str(uuid.uuid4()), None, 7, ""], ids=repr)
def test_bad_store(customer_api, store, product, store_id):
    response = post(customer_api, body_for(store, (product, 1), store_id=store_id))

    assert bad_input(response, product) == {"store_id"}


def test_inactive_store(customer_api, product):
    closed = StoreFactory(is_active=False)
    goods = ProductFactory(store=closed)

    response = post(customer_api, body_for(closed, (goods, 1)))

    assert bad_input(response, goods) == {"store_id"}


# --- create: delivery -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, field",
    [
        ({"lat": 91}, "lat"), ({"lat": -91}, "lat"), ({"lng": 181}, "lng"), ({"lng": -180.5}, "lng"),
        ({"lat": "north"}, "lat"), ({"lat": None}, "lat"), ({"lat": "NaN"}, "lat"), ({"lng": "Infinity"}, "lng"),
        ({"lat": "-inf"}, "lat"), ({"lat": "1e400"}, "lat"), ({"address": ""}, "address"),
        ({"address": "x" * 501}, "address"), ({"address": None}, "address"), ({"lat": True}, "lat"),
        ({"lng": False}, "lng"), ({"lat": "52.5"}, "lat"), ({"lng": [13.4]}, "lng"),
    ],
    ids=repr,
)  # fmt: skip
def test_bad_delivery(customer_api, store, product, change, field):
    body = body_for(store, (product, 1))
    body["delivery"] = {**body["delivery"], **change}

    response = post(customer_api, body)

    assert bad_input(response, product) == {f"delivery.{field}"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_coordinates_in_the_raw_body(customer_api, store, product, literal):
    raw = json.dumps(body_for(store, (product, 1))).replace("52.52", literal)

    response = post(customer_api, raw)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in {"malformed_request", "validation_error"}
    assert_nothing_written(product)


@pytest.mark.parametrize("delivery", [None, "Torstr. 1", [], {}], ids=repr)
def test_bad_delivery_object(customer_api, store, product, delivery):
    response = post(customer_api, body_for(store, (product, 1), delivery=delivery))

    fields = bad_input(response, product)
    assert fields and all(f.startswith("delivery") for f in fields)


def test_edge_coordinates_are_fine(customer_api, store, product):
    body = body_for(store, (product, 1))
    body["delivery"].update(lat=-90, lng=180)

    assert post(customer_api, body).status_code == 201


# --- create: the body as a whole ------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["store_id", "items", "delivery", "payment_token"])
def test_missing_fields(customer_api, store, product, missing):
    body = body_for(store, (product, 1))
    del body[missing]

    assert bad_input(post(customer_api, body), product) == {missing}


@pytest.mark.parametrize("token", ["", None, {"t": 1}, "x" * 256], ids=repr)
def test_bad_payment_token(customer_api, store, product, token):
    assert bad_input(post(customer_api, body_for(store, (product, 1), payment_token=token)), product) == {
        "payment_token"
    }


@pytest.mark.parametrize("raw", ["{", '{"store_id": }', "[1,", "not json", '{"a": 1}}', "\x00"], ids=repr)
def test_malformed_json(customer_api, product, raw):
    problem(post(customer_api, raw), 400, "malformed_request")
    assert_nothing_written(product)


@pytest.mark.parametrize("raw", ["[]", "null", "42", '"order"', "{}"], ids=repr)
def test_body_that_is_not_an_order_object(customer_api, product, raw):
    problem(post(customer_api, raw), 400, "validation_error")
    assert_nothing_written(product)


def test_empty_body(customer_api, product):
    response = customer_api.post(ORDERS, HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert_nothing_written(product)


def test_body_over_256_kib_is_413(customer_api, store, product):
    body = body_for(store, (product, 1))
    body["padding"] = "x" * (256 * 1024)

    problem(post(customer_api, body), 413, "body_too_large")
    assert_nothing_written(product)


def test_form_encoded_body_is_415(customer_api, store, product):
    response = customer_api.post(ORDERS, {"store_id": str(store.pk)}, HTTP_IDEMPOTENCY_KEY="k")

    problem(response, 415, "unsupported_media_type")
    assert_nothing_written(product)


# --- create: Idempotency-Key ----------------------------------------------------------------------


def test_missing_idempotency_key_is_400(customer_api, store, product):
    response = customer_api.post(ORDERS, body_for(store, (product, 1)), format="json")

    problem(response, 400, "idempotency_key_required")
    assert_nothing_written(product)


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256 chars"])
def test_bad_idempotency_key_is_400(customer_api, store, product, key):
    problem(post(customer_api, body_for(store, (product, 1)), key=key), 400, "idempotency_key_required")
    assert_nothing_written(product)


def test_idempotency_key_of_255_chars_is_fine(customer_api, store, product):
    assert post(customer_api, body_for(store, (product, 1)), key="k" * 255).status_code == 201


def test_bad_input_leaves_the_key_free_for_a_corrected_retry(customer_api, store, product):
    problem(post(customer_api, body_for(store, (product, 0))), 400, "validation_error")

    retry = post(customer_api, body_for(store, (product, 1)))

    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry


# --- create: who ----------------------------------------------------------------------------------


def test_create_needs_credentials(store, product):
    problem(post(APIClient(), body_for(store, (product, 1))), 401, "not_authenticated")
    assert_nothing_written(product)


def test_create_with_a_bad_token_is_401(store, product):
    response = post(APIClient(HTTP_AUTHORIZATION="Bearer nope"), body_for(store, (product, 1)))

    problem(response, 401, "invalid_token")
    assert_nothing_written(product)


# --- read and list --------------------------------------------------------------------------------


def test_read_own_order(customer_api, customer, store, product):
    created = post(customer_api, body_for(store, (product, 2))).json()

    response = customer_api.get(f"{ORDERS}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created
    assert set(created) == {
        "id", "status", "cancel_reason", "store_id", "customer_id", "total", "currency", "items", "delivery",
        "payment", "driver", "created_at", "updated_at", "timeline",
    }  # fmt: skip
    assert (created["payment"], created["driver"], created["cancel_reason"]) == (None, None, None)


def test_someone_elses_order_is_404_like_a_missing_one(customer_api):
    theirs = place_order()

    for url in [f"{ORDERS}/{theirs.pk}", f"{ORDERS}/{uuid.uuid4()}"]:
        body = problem(customer_api.get(url), 404, "not_found")
        assert str(theirs.pk) not in json.dumps(body)


@pytest.mark.parametrize("path", ["nope", "123", str(uuid.uuid4())[:-1]])
def test_malformed_order_id_is_404(customer_api, path):
    problem(customer_api.get(f"{ORDERS}/{path}"), 404, "not_found")


def test_staff_may_read_it(staff_api):  # and its driver: delivery/tests/test_who_drives.py
    order = place_order()

    assert staff_api.get(f"{ORDERS}/{order.pk}").status_code == 200


def test_list_shows_only_own_orders_newest_first(customer_api, customer):
    mine = [place_order(customer=customer) for _ in range(3)]
    place_order()

    response = customer_api.get(ORDERS)

    assert response.status_code == 200
    assert set(response.json()) == {"results", "next"}
    assert [o["id"] for o in response.json()["results"]] == [str(o.pk) for o in reversed(mine)]


def test_list_filters_by_status_and_pages(customer_api, customer):
    orders = [place_order(customer=customer) for _ in range(3)]
    services.order_cancel(order_id=orders[0].pk, reason="customer")

    cancelled = customer_api.get(ORDERS, {"status": "cancelled"}).json()
    first = customer_api.get(ORDERS, {"limit": 1}).json()

    assert [o["id"] for o in cancelled["results"]] == [str(orders[0].pk)]
    assert len(first["results"]) == 1 and first["next"]
    assert customer_api.get(first["next"]).status_code == 200


def test_staff_list_every_order(staff_api):
    place_order()
    place_order()

    assert len(staff_api.get(ORDERS).json()["results"]) == 2


@pytest.mark.parametrize("status", ["bogus", "RESERVED", "cancelled,paid"], ids=repr)
def test_list_with_a_bad_status_is_400(customer_api, status):
    response = customer_api.get(ORDERS, {"status": status})

    assert {e["field"] for e in problem(response, 400, "validation_error")["errors"]} == {"status"}


@pytest.mark.parametrize("limit", ["lots", -5, 0, "1.5", "²", "9" * 30], ids=repr)
def test_list_with_a_bad_limit_is_400(customer_api, customer, limit):
    place_order(customer=customer)

    assert {
        e["field"] for e in problem(customer_api.get(ORDERS, {"limit": limit}), 400, "validation_error")["errors"]
    } == {"limit"}


def test_empty_limit_cursor_and_filter_mean_none_given_and_big_limits_are_capped(customer_api, customer):
    for _ in range(3):
        place_order(customer=customer)

    assert len(customer_api.get(ORDERS, {"limit": "", "cursor": "", "status": ""}).json()["results"]) == 3
    assert len(customer_api.get(ORDERS, {"limit": 10**6}).json()["results"]) == 3


BAD_CURSORS = {"junk": "garbage", "p=not-a-time": "cD1ub3QtYS10aW1l", "o=-1": "bz0tMQ==", "bad-padding": "YQ",
               "r=x": "cj14"}  # fmt: skip


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
def test_list_with_a_bad_cursor_is_400(customer_api, customer, cursor):
    place_order(customer=customer)

    problem(customer_api.get(ORDERS, {"cursor": cursor}), 400, "invalid_cursor")


def test_list_needs_credentials():
    problem(APIClient().get(ORDERS), 401, "not_authenticated")


# --- cancel ---------------------------------------------------------------------------------------


def test_customer_cancels_a_reserved_order(customer_api, customer, store, product):
    created = post(customer_api, body_for(store, (product, 4))).json()

    response = customer_api.post(f"{ORDERS}/{created['id']}/cancel")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled", "customer")
    assert body["payment"] is None  # never charged
    assert [s["step"] for s in body["timeline"]] == ["reserve_stock", "release_stock"]
    product.refresh_from_db()
    assert (product.on_hand, product.reserved) == (10, 0)
    assert_invariants()


def test_customer_cancels_a_paid_order_and_is_refunded(customer_api, customer, product):
    order = place_order(customer=customer, product=product, quantity=3)
    run_saga(order)

    response = customer_api.post(f"{ORDERS}/{order.pk}/cancel")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["payment"] == {"status": "refunded", "amount": order.total, "refunded_amount": order.total}
    product.refresh_from_db()
    assert (product.on_hand, product.reserved) == (10, 0)
    assert_invariants()


def test_cancel_twice_is_idempotent(customer_api, customer, product):
    order = place_order(customer=customer, product=product)
    run_saga(order)

    first = customer_api.post(f"{ORDERS}/{order.pk}/cancel")
    second = customer_api.post(f"{ORDERS}/{order.pk}/cancel")

    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "cancelled"
    assert second.json()["payment"] == first.json()["payment"]
    assert Payment.objects.get(order=order).refunded_amount == order.total
    assert Product.objects.get(pk=product.pk).on_hand == 10
    assert_invariants()


def test_stranger_cancel_is_404_and_changes_nothing(customer_api):
    theirs = place_order()

    problem(customer_api.post(f"{ORDERS}/{theirs.pk}/cancel"), 404, "not_found")
    problem(customer_api.post(f"{ORDERS}/{uuid.uuid4()}/cancel"), 404, "not_found")
    assert Order.objects.get(pk=theirs.pk).status == "reserved"


def test_staff_cancel_with_reason_staff(staff_api):
    order = place_order()

    response = staff_api.post(f"{ORDERS}/{order.pk}/cancel")

    assert (response.status_code, response.json()["cancel_reason"]) == (200, "staff")


def test_cancel_once_picked_up_is_409(customer_api, customer):
    order = place_order(customer=customer)
    run_saga(order)
    services.order_assign_driver(order_id=order.pk, driver_id=3)
    services.order_mark_picked_up(order_id=order.pk, driver_id=3)

    problem(customer_api.post(f"{ORDERS}/{order.pk}/cancel"), 409, "not_cancellable")
    assert Order.objects.get(pk=order.pk).status == "picked_up"
    assert Payment.objects.get(order=order).status == "succeeded"


def test_cancel_at_the_stock_ceiling_cancels_and_fills_the_shelf(customer_api, customer, store):
    """The units bought come back while staff restocked up to the integer ceiling in between."""
    product = ProductFactory(store=store, on_hand=MAX_ON_HAND)
    order = place_order(customer=customer, product=product, quantity=3)
    run_saga(order)
    Product.objects.filter(pk=product.pk).update(on_hand=MAX_ON_HAND - 1)

    response = customer_api.post(f"{ORDERS}/{order.pk}/cancel")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["payment"]["status"]) == ("cancelled", "refunded")
    assert Product.objects.get(pk=product.pk).on_hand == MAX_ON_HAND
    assert_invariants()


def test_order_next_to_the_stock_ceiling_is_409_not_500(customer_api, store):
    product = ProductFactory(store=store, on_hand=MAX_ON_HAND)
    Product.objects.filter(pk=product.pk).update(reserved=MAX_ON_HAND - 5)

    body = problem(post(customer_api, body_for(store, (product, 1000))), 409, "out_of_stock")

    assert body["items"] == [{"product_id": str(product.pk), "requested": 1000, "available": 5}]
    assert Product.objects.get(pk=product.pk).reserved == MAX_ON_HAND - 5


def test_cancel_needs_credentials_and_post():
    order = place_order()

    problem(APIClient().post(f"{ORDERS}/{order.pk}/cancel"), 401, "not_authenticated")
    problem(bearer_client(order.customer).get(f"{ORDERS}/{order.pk}/cancel"), 405, "method_not_allowed")
    assert Order.objects.get(pk=order.pk).status == "reserved"
