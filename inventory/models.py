import uuid

from django.db import models
from django.db.models import F, Q


class Store(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=500)
    lat = models.FloatField()
    lng = models.FloatField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(lat__gte=-90, lat__lte=90), name="store_lat_range"),
            models.CheckConstraint(condition=Q(lng__gte=-180, lng__lte=180), name="store_lng_range"),
        ]

    def __str__(self):
        return self.name


class ProductQuerySet(models.QuerySet):
    def with_available(self) -> "ProductQuerySet":
        """`available_stock` (on hand minus reserved) for filters, ordering and conditional updates, computed
        by the database: Product.available's rule for rows not loaded. An alias, so it is never selected."""
        return self.alias(available_stock=F("on_hand") - F("reserved"))


class Product(models.Model):
    """A product and its stock. `available` = on_hand - reserved, and the database keeps it >= 0."""

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="products")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    price = models.PositiveIntegerField(help_text="Minor units (1250 = 12.50).")
    currency = models.CharField(max_length=3)
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "sku"], name="product_sku_unique_per_store"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="product_reserved_not_negative"),
            models.CheckConstraint(condition=Q(reserved__lte=F("on_hand")), name="product_reserved_within_on_hand"),
        ]

    def __str__(self):
        return f"{self.name} ({self.sku})"

    @property
    def available(self) -> int:
        """What can still be sold; ProductQuerySet.with_available is the same rule inside a query."""
        return self.on_hand - self.reserved


class Reservation(models.Model):
    """Stock held for one order line. The order lives in an upper app, so it is referenced by id only."""

    class State(models.TextChoices):
        HELD = "held"  # counted in product.reserved
        COMMITTED = "committed"  # taken out of on_hand: the order was paid
        RELEASED = "released"  # hold given back before payment
        RESTOCKED = "restocked"  # committed stock put back after a cancellation

    # No single-column indexes: `reservation_one_per_order_line` starts with order_id, `reservation_product_state`
    # with product.
    order_id = models.UUIDField()
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="reservations", db_index=False)
    quantity = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.HELD)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order_id", "product"], name="reservation_one_per_order_line"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="reservation_quantity_positive"),
        ]
        indexes = [models.Index(fields=["product", "state"], name="reservation_product_state")]

    def __str__(self):
        return f"{self.quantity} x product {self.product_id} for {self.order_id} ({self.state})"
