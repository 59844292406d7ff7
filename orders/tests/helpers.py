from django.core.management import call_command

from accounts.tests.factories import UserFactory
from inventory.tests.factories import ProductFactory, StoreFactory
from orders import services
from orders.gateways import GatewayBooks, get_gateway
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


def gateway_books(order) -> GatewayBooks:
    """What the configured gateway booked for the order (the sandbox gateway offers its books)."""
    return get_gateway().books().get(str(order.pk), GatewayBooks(charges=0, charged=0, refunded=0))


def assert_invariants() -> None:
    call_command("check_invariants")  # raises CommandError on any violation
