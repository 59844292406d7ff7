"""Catalog and stock writes. The reservation moves (`reservations_*`) are idempotent per order: running one
twice for the same order changes nothing. Catalog writes and `product_restock` are not: each call acts.

Counters move with conditional UPDATEs (never read-modify-write), and rows are touched in product-id
order so two orders that share products always lock them in the same order and never deadlock.
"""

from dataclasses import dataclass
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField, F
from django.db.models.functions import Cast, Least

from common.errors import Conflict, Invalid
from inventory.models import Product, Reservation, Store


@dataclass(frozen=True)
class Shortfall:
    product_id: int
    requested: int
    available: int


class SkuTaken(Invalid):
    """A store sells each SKU once."""

    def __init__(self, detail: str):
        super().__init__(detail, code="unique", field="sku")


class OutOfStock(Conflict):
    default_code = "out_of_stock"

    def __init__(self, shortfalls: list[Shortfall]):
        super().__init__(
            "Not enough stock for some items; nothing was reserved.",
            items=[
                {"product_id": str(s.product_id), "requested": s.requested, "available": s.available}
                for s in shortfalls
            ],
        )
        self.shortfalls = shortfalls


def store_create(*, name: str, address: str, lat: float, lng: float, is_active: bool = True) -> Store:
    return Store.objects.create(name=name, address=address, lat=lat, lng=lng, is_active=is_active)


def product_create(*, store: Store, sku: str, name: str, price: int, currency: str, stock: int) -> Product:
    """Raises SkuTaken when the store already sells this SKU (the unique constraint decides, so two
    concurrent creates cannot both win)."""
    try:
        with transaction.atomic():
            return Product.objects.create(
                store=store, sku=sku, name=name, price=price, currency=currency, on_hand=stock
            )
    except IntegrityError as exc:
        raise SkuTaken("This store already has a product with this SKU.") from exc


# `on_hand` is a PostgreSQL integer: a restock that would overflow it must be refused, not crash.
MAX_ON_HAND = 2**31 - 1

# What staff may edit on a product by hand. Stock counters are absent on purpose: they move only
# through the reservation functions below and `product_restock`.
PRODUCT_EDITABLE_FIELDS = frozenset({"sku", "name", "price", "currency", "is_active"})
STORE_EDITABLE_FIELDS = frozenset({"name", "address", "lat", "lng", "is_active"})


def store_update(*, store_id: UUID, fields: dict) -> Store:
    if unknown := set(fields) - STORE_EDITABLE_FIELDS:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if fields:
        Store.objects.filter(pk=store_id).update(**fields)
    return Store.objects.get(pk=store_id)


def product_update(*, product_id: int, fields: dict) -> Product:
    """Change descriptive fields only, with an UPDATE naming just them: saving a whole product loaded
    earlier would write back stale `on_hand`/`reserved` and undo concurrent reservations."""
    if unknown := set(fields) - PRODUCT_EDITABLE_FIELDS:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if fields:
        Product.objects.filter(pk=product_id).update(**fields)
    return Product.objects.get(pk=product_id)


def product_restock(*, product_id: int, quantity: int) -> Product:
    if quantity < 1:
        raise ValueError("quantity must be positive")
    restocked = Product.objects.filter(pk=product_id, on_hand__lte=MAX_ON_HAND - quantity).update(
        on_hand=F("on_hand") + quantity
    )
    product = Product.objects.get(pk=product_id)
    if not restocked:
        raise Conflict(
            f"Restocking {quantity} would exceed the stock limit of {MAX_ON_HAND}.",
            code="stock_limit_exceeded",
            on_hand=product.on_hand,
        )
    return product


def reservations_hold(*, order_id: UUID, lines: dict[int, int]) -> None:
    """Hold `lines` ({product_id: quantity}) for an order, all or nothing; raises OutOfStock.

    Must run inside the caller's transaction: on OutOfStock the caller rolls back every hold made so far.
    """
    if Reservation.objects.filter(order_id=order_id).exists():
        return
    shortfalls = []
    for product_id in sorted(lines):
        quantity = lines[product_id]
        # `on_hand - reserved` cannot overflow where `reserved + quantity` could, next to the integer ceiling.
        held = (
            Product.objects.with_available()
            .filter(pk=product_id, is_active=True, available_stock__gte=quantity)
            .update(reserved=F("reserved") + quantity)
        )
        if not held:
            product = Product.objects.filter(pk=product_id).only("on_hand", "reserved").first()
            shortfalls.append(Shortfall(product_id, quantity, max(0, product.available if product else 0)))
    if shortfalls:
        raise OutOfStock(shortfalls)
    Reservation.objects.bulk_create(
        Reservation(order_id=order_id, product_id=product_id, quantity=quantity)
        for product_id, quantity in sorted(lines.items())
    )


def _move(*, order_id: UUID, source: str, target: str, counters: dict) -> int:
    """Move an order's reservations from `source` to `target` state, adjusting product counters.

    Locking the reservation rows first makes a concurrent second run wait, then find nothing left to move.
    """
    with transaction.atomic():
        reservations = list(
            Reservation.objects.select_for_update().filter(order_id=order_id, state=source).order_by("product_id")
        )
        for reservation in reservations:
            q = reservation.quantity
            Product.objects.filter(pk=reservation.product_id).update(
                **{field: _moved(field, sign * q) for field, sign in counters.items()}
            )
        Reservation.objects.filter(pk__in=[r.pk for r in reservations]).update(state=target)
    return len(reservations)


def _moved(field: str, change: int):
    # Putting stock back must never fail a cancellation: at the integer ceiling the shelf is simply full
    # (units past MAX_ON_HAND are not counted), rather than the order staying paid behind a 500.
    if change > 0:
        return Least(Cast(field, BigIntegerField()) + change, MAX_ON_HAND)  # summed as bigint: no overflow
    return F(field) + change


def reservations_commit(*, order_id: UUID) -> int:
    """Paid: the held units leave the shelf."""
    S = Reservation.State
    return _move(order_id=order_id, source=S.HELD, target=S.COMMITTED, counters={"on_hand": -1, "reserved": -1})


def reservations_release(*, order_id: UUID) -> int:
    """Cancelled before payment: the held units become available again."""
    S = Reservation.State
    return _move(order_id=order_id, source=S.HELD, target=S.RELEASED, counters={"reserved": -1})


def reservations_restock(*, order_id: UUID) -> int:
    """Cancelled after payment: committed units go back on the shelf."""
    S = Reservation.State
    return _move(order_id=order_id, source=S.COMMITTED, target=S.RESTOCKED, counters={"on_hand": +1})
