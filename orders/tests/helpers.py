from django.core.management import call_command

from common.testing import ProductFactory, StoreFactory, UserFactory
from orders import services
from orders.models import Order


def place_order(*, quantity=2, token="tok_ok", product=None, customer=None) -> Order:
    product = product or ProductFactory(store=StoreFactory(), on_hand=10)
    return services.order_create(
        customer=customer or UserFactory(), store=product.store,
        lines=[services.LineInput(product=product, quantity=quantity)],
        delivery_address="Torstr. 1", delivery_lat=52.53, delivery_lng=13.40, payment_token=token,
    )  # fmt: skip


def run_saga(order) -> None:
    """Drive the saga to rest, as the worker would, without the waits between retries."""
    for _ in range(50):
        if services.order_saga_advance(order_id=order.pk) is None:
            return
    raise AssertionError("saga did not come to rest")


def assert_invariants() -> None:
    call_command("check_invariants")  # raises CommandError on any violation
