import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from inventory import services
from inventory.models import Product, Reservation, Store
from inventory.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

PRODUCTS = "/admin/inventory/product/"
STORES = "/admin/inventory/store/"


def listed(response, product) -> bool:
    return f"/admin/inventory/product/{product.pk}/change/" in response.content.decode()


def hold(product, quantity, order_id=None):
    import uuid

    services.reservations_hold(order_id=order_id or uuid.uuid4(), lines={product.pk: quantity})


def test_product_changelist_shows_on_hand_reserved_and_available(admin_client, product):
    hold(product, 3)

    response = admin_client.get(PRODUCTS)

    assert response.status_code == 200
    row = next(r for r in response.context["cl"].result_list if r.pk == product.pk)
    assert (row.on_hand, row.reserved, row.available) == (10, 3, 7)
    for header in ["On hand", "Reserved", "Available"]:
        assert header in response.content.decode()


def test_low_stock_filter_lists_products_with_little_available(admin_client, store):
    plenty = ProductFactory(store=store, on_hand=50)
    low_after_holds = ProductFactory(store=store, on_hand=20)
    hold(low_after_holds, 16)
    empty = ProductFactory(store=store, on_hand=0)

    low = admin_client.get(PRODUCTS + "?stock=low")
    out = admin_client.get(PRODUCTS + "?stock=out")

    assert low.status_code == out.status_code == 200
    assert listed(low, low_after_holds) and listed(low, empty) and not listed(low, plenty)
    assert listed(out, empty) and not listed(out, low_after_holds)


def test_product_changelist_renders_with_filters_search_and_sorting(admin_client, product):
    for query in [
        "", "?is_active__exact=1", f"?store__id__exact={product.store_id}", f"?q={product.sku}", "?q=zzz",
        "?o=7", "?o=-7.1", "?stock=low&is_active__exact=0",
    ]:  # fmt: skip
        assert admin_client.get(PRODUCTS + query).status_code == 200, query
    assert listed(admin_client.get(f"{PRODUCTS}?q={product.sku}"), product)


def test_product_changelist_query_count_does_not_grow_with_products(admin_client):
    ProductFactory()
    with CaptureQueriesContext(connection) as one:
        admin_client.get(PRODUCTS)
    ProductFactory.create_batch(8)

    with CaptureQueriesContext(connection) as nine:
        admin_client.get(PRODUCTS)

    assert len(nine) == len(one)


def test_restock_action_asks_the_quantity_then_restocks(admin_client, store):
    a = ProductFactory(store=store, on_hand=1)
    b = ProductFactory(store=store, on_hand=0)
    hold(a, 1)
    selection = {"action": "restock_selected", "_selected_action": [a.pk, b.pk]}

    form_page = admin_client.post(PRODUCTS, {**selection, "index": 0})
    assert form_page.status_code == 200
    assert 'name="quantity"' in form_page.content.decode()
    assert Product.objects.get(pk=a.pk).on_hand == 1  # nothing happens before the quantity is given

    done = admin_client.post(PRODUCTS, {**selection, "quantity": 25, "apply": "Restock"}, follow=True)

    assert done.status_code == 200
    assert "Added 25 units to 2 product(s)." in [str(m) for m in done.context["messages"]]
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.on_hand, a.reserved, b.on_hand) == (26, 1, 25)


@pytest.mark.parametrize("quantity", ["0", "-3", "ten", "", "10000001"])
def test_restock_action_refuses_a_bad_quantity(admin_client, product, quantity):
    response = admin_client.post(
        PRODUCTS,
        {"action": "restock_selected", "_selected_action": [product.pk], "quantity": quantity, "apply": "Restock"},
    )

    assert response.status_code == 200  # the form again, with its error
    assert response.context["form"].errors["quantity"]
    assert Product.objects.get(pk=product.pk).on_hand == 10


def test_restock_action_reports_a_product_at_the_stock_limit(admin_client, store):
    full = ProductFactory(store=store, on_hand=services.MAX_ON_HAND - 5)
    fine = ProductFactory(store=store, on_hand=0)

    response = admin_client.post(
        PRODUCTS,
        {"action": "restock_selected", "_selected_action": [full.pk, fine.pk], "quantity": 10, "apply": "Restock"},
        follow=True,
    )

    text = " | ".join(str(m) for m in response.context["messages"])
    assert "Added 10 units to 1 product(s)." in text and f"Not restocked: {full.name}" in text
    assert Product.objects.get(pk=full.pk).on_hand == services.MAX_ON_HAND - 5
    assert Product.objects.get(pk=fine.pk).on_hand == 10


def test_change_form_shows_stock_read_only(admin_client, product):
    response = admin_client.get(f"{PRODUCTS}{product.pk}/change/")

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert {"on_hand", "reserved", "store"}.isdisjoint(form.fields)
    assert {"name", "price", "is_active"} <= set(form.fields)


def test_saving_the_change_form_keeps_reservations_made_meanwhile(admin_client, product):
    """The form was opened with reserved=0; an order holds 4 before staff press Save."""
    page = admin_client.get(f"{PRODUCTS}{product.pk}/change/")
    assert page.status_code == 200
    hold(product, 4)

    response = admin_client.post(
        f"{PRODUCTS}{product.pk}/change/",
        {"sku": product.sku, "name": "Renamed", "price": 999, "currency": "eur", "is_active": "on",
         "on_hand": 99999, "reserved": 0},
    )  # fmt: skip

    assert response.status_code == 302, response.context["adminform"].form.errors
    product.refresh_from_db()
    assert (product.name, product.price, product.currency) == ("Renamed", 999, "EUR")
    assert (product.on_hand, product.reserved) == (10, 4)


def test_add_product_sets_the_initial_stock(admin_client, store):
    response = admin_client.post(
        f"{PRODUCTS}add/",
        {"store": store.pk, "sku": "NEW-1", "name": "Oat milk", "price": 249, "currency": "EUR", "on_hand": 12},
    )

    assert response.status_code == 302
    product = Product.objects.get(sku="NEW-1")
    assert (product.on_hand, product.reserved, product.is_active) == (12, 0, False)
    assert response["Location"] == PRODUCTS


@pytest.mark.parametrize(
    "change",
    [{"sku": "DUP"}, {"currency": "EURO"}, {"price": -1}, {"on_hand": -1}, {"on_hand": "x"}, {"store": ""}],
)
def test_add_product_refuses_bad_input(admin_client, store, change):
    ProductFactory(store=store, sku="DUP")
    data = {"store": store.pk, "sku": "NEW-2", "name": "Tea", "price": 100, "currency": "EUR", "on_hand": 1, **change}

    response = admin_client.post(f"{PRODUCTS}add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Product.objects.count() == 1


def test_products_cannot_be_deleted(admin_client, product):
    assert admin_client.get(f"{PRODUCTS}{product.pk}/delete/").status_code == 403
    assert Product.objects.filter(pk=product.pk).exists()


def test_store_admin_lists_adds_and_edits(admin_client, store):
    assert admin_client.get(STORES).status_code == 200
    assert admin_client.get(f"{STORES}?q={store.name}&is_active__exact=1").status_code == 200
    assert admin_client.get(f"{STORES}{store.pk}/change/").status_code == 200

    added = admin_client.post(
        f"{STORES}add/", {"name": "Kiosk", "address": "Torstr. 2", "lat": 52.5, "lng": 13.4, "is_active": "on"}
    )
    edited = admin_client.post(
        f"{STORES}{store.pk}/change/", {"name": "Renamed", "address": store.address, "lat": 10, "lng": 20}
    )
    refused = admin_client.post(f"{STORES}add/", {"name": "Nowhere", "address": "x", "lat": 91, "lng": 0})

    assert added.status_code == edited.status_code == 302
    assert Store.objects.filter(name="Kiosk", is_active=True).exists()
    store.refresh_from_db()
    assert (store.name, store.lat, store.lng, store.is_active) == ("Renamed", 10, 20, False)
    assert refused.status_code == 200 and not Store.objects.filter(name="Nowhere").exists()


def test_store_autocomplete_for_the_product_form(admin_client, store):
    response = admin_client.get(
        "/admin/autocomplete/",
        {"term": store.name, "app_label": "inventory", "model_name": "product", "field_name": "store"},
    )

    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(store.pk)]


def test_reservations_are_visible_read_only(admin_client, product):
    import uuid

    order_id = uuid.uuid4()
    hold(product, 2, order_id=order_id)
    reservation = Reservation.objects.get()

    for query in ["", "?state__exact=held", f"?q={order_id}", f"?q={product.sku}", f"?product__id__exact={product.pk}"]:
        response = admin_client.get("/admin/inventory/reservation/" + query)
        assert response.status_code == 200, query
        assert str(order_id) in response.content.decode(), query
    detail = admin_client.get(f"/admin/inventory/reservation/{reservation.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert (
        admin_client.post(f"/admin/inventory/reservation/{reservation.pk}/change/", {"quantity": 9}).status_code == 403
    )
    assert Reservation.objects.get().quantity == 2
    assert admin_client.get("/admin/inventory/reservation/add/").status_code == 403


def test_non_staff_cannot_restock(customer, product):
    client = Client()
    client.force_login(customer)

    response = client.post(
        PRODUCTS, {"action": "restock_selected", "_selected_action": [product.pk], "quantity": 5, "apply": "Restock"}
    )

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Product.objects.get(pk=product.pk).on_hand == 10
