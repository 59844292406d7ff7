import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.functional import cached_property

from common.money import money
from inventory.models import Product, Store
from orders.drivers import OrderDriver, drivers_of


class OrderQuerySet(models.QuerySet):
    def with_details(self) -> "OrderQuerySet":
        """Everything the order's API shape (`orders.api.OrderOutput`) reads, in three queries for any number
        of orders, but its driver (`Order.driver`; a list asks for all at once with `selectors.orders_with_drivers`):
        the one definition for every view that answers with orders."""
        return self.select_related("payment").prefetch_related("lines", "timeline")


class Order(models.Model):
    class Status(models.TextChoices):
        RESERVED = "reserved"  # stock held, payment not yet taken
        PAID = "paid"  # charged and stock committed; waiting for a driver
        ASSIGNED = "assigned"  # a driver holds it, or held it and gave it back (then `awaiting_driver` again)
        PICKED_UP = "picked_up"  # on its way; no longer cancellable
        DELIVERED = "delivered"  # final
        CANCELLED = "cancelled"  # final; stock and money given back

    class CancelReason(models.TextChoices):
        PAYMENT_DECLINED = "payment_declined"
        PAYMENT_FAILED = "payment_failed"
        NO_DRIVER = "no_driver"
        CUSTOMER = "customer"
        STAFF = "staff"

    # The only allowed moves; `services._transition` checks every status change against this.
    TRANSITIONS = {
        Status.RESERVED: {Status.PAID, Status.CANCELLED},
        Status.PAID: {Status.ASSIGNED, Status.CANCELLED},
        Status.ASSIGNED: {Status.PICKED_UP, Status.CANCELLED},
        Status.PICKED_UP: {Status.DELIVERED},
        Status.DELIVERED: set(),
        Status.CANCELLED: set(),
    }
    FINAL = {Status.DELIVERED, Status.CANCELLED}
    ACTIVE = {Status.RESERVED, Status.PAID, Status.ASSIGNED, Status.PICKED_UP}

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: `order_customer_recent` starts with it.
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    # No index: only a store's deletion (refused while it has orders) looks orders up by store, and every index
    # costs every order placed.
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="orders", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RESERVED)
    # null, not "": the contract's `cancel_reason` is null unless cancelled, and a CHECK ties it to the status
    cancel_reason = models.CharField(max_length=32, choices=CancelReason.choices, null=True, blank=True)  # noqa: DJ001
    total = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    delivery_address = models.CharField(max_length=500)
    delivery_lat = models.FloatField()
    delivery_lng = models.FloatField()
    payment_token = models.CharField(max_length=255)
    # Inside the platform only (the contract's `status` never moves backwards): paid, or assigned and given back
    # by its driver, and no driver holds it yet. Dispatch works from this; a CHECK keeps it true to the status.
    awaiting_driver = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the sweeper last re-drove the saga. Not a change of the order: `updated_at` stays, so "stuck" (nothing
    # moved it since) keeps meaning the same to the sweeper, the dashboard and the admin's filter.
    saga_redriven_at = models.DateTimeField(null=True, blank=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="order_customer_recent"),
            models.Index(fields=["status", "updated_at"], name="order_status_updated"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="cancelled", cancel_reason__isnull=False)
                | (~Q(status="cancelled") & Q(cancel_reason__isnull=True)),
                name="order_cancel_reason_iff_cancelled",
            ),
            # A paid order always awaits its first driver; only an assigned one may await the next.
            models.CheckConstraint(
                condition=Q(status="paid", awaiting_driver=True)
                | Q(status="assigned", awaiting_driver=True)
                | (~Q(status="paid") & Q(awaiting_driver=False)),
                name="order_awaiting_driver_follows_status",
            ),
        ]

    def __str__(self):
        return f"Order {self.id}"

    def refresh_from_db(self, *args, **kwargs):
        super().refresh_from_db(*args, **kwargs)
        self.__dict__.pop("driver", None)  # asked again, like a relation Django reloads

    @property
    def may_have_driver(self) -> bool:
        return not self.awaiting_driver and self.status not in (self.Status.RESERVED, self.Status.PAID)

    @cached_property
    def driver(self) -> OrderDriver | None:
        """Who drives the order (or drove it, once delivered or cancelled); None while nobody holds it. The record
        is the delivery app's, read through `orders.drivers`: no query while the order cannot have a driver."""
        return drivers_of([self.pk]).get(self.pk) if self.may_have_driver else None


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False)  # unique below
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]  # the client's order of lines: `orders_place` inserts them in it
        constraints = [models.UniqueConstraint(fields=["order", "product"], name="order_line_unique_product")]

    def __str__(self):
        return f"{self.quantity} x {self.name}"


class Payment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # not confirmed yet; a charge may be in flight
        SUCCEEDED = "succeeded"  # money taken
        DECLINED = "declined"  # the gateway said no; nothing taken
        FAILED = "failed"  # gave up on an unreachable gateway; a charge, if any, is refunded on settlement
        REFUNDED = "refunded"  # taken, then given back in full
        VOIDED = "voided"  # settled after a cancellation: nothing had been taken

    UNSETTLED = {Status.PENDING, Status.SUCCEEDED, Status.FAILED}

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="payment")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    refunded_amount = models.PositiveBigIntegerField(default=0)
    charge_reference = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=models.F("amount")), name="payment_refund_le_amount"
            )
        ]

    def __str__(self):
        return f"{self.get_status_display()} {money(self.amount, self.currency)}"


class TimelineEntry(models.Model):
    """The saga log: one row per step attempt and per compensation."""

    class Step(models.TextChoices):
        """Every step the saga and the delivery record (the contract's `timeline[].step`), owned here so
        orders, delivery and tracking name them one way."""

        RESERVE_STOCK = "reserve_stock"  # stock held for every line: the order exists
        CHARGE_PAYMENT = "charge_payment"  # one gateway charge attempt
        COMMIT_STOCK = "commit_stock"  # paid: the held units leave the shelf
        RELEASE_STOCK = "release_stock"  # compensation before payment: holds given back
        RESTOCK = "restock"  # compensation after payment: committed units back on the shelf
        REFUND_PAYMENT = "refund_payment"  # compensation: money given back (or nothing was taken)
        ASSIGN_DRIVER = "assign_driver"  # a driver holds the order (failed: none found in time)
        UNASSIGN_DRIVER = "unassign_driver"  # the driver gave it back, or staff took it away
        ACCEPT_DELIVERY = "accept_delivery"  # the driver accepted
        PICK_UP = "pick_up"  # the driver has the goods
        DELIVER = "deliver"  # handed over

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        DECLINED = "declined"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="timeline", db_index=False)  # index below
    step = models.CharField(max_length=32, choices=Step.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    attempt = models.PositiveIntegerField(default=1)
    detail = models.CharField(max_length=500, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["order", "at"], name="timeline_order_at")]

    def __str__(self):
        return f"{self.step} {self.status} (attempt {self.attempt})"


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change it announces; relayed at least once."""

    topic = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # What the relay polls for, in id order: small, as published rows leave it.
            models.Index(fields=["id"], condition=Q(published_at__isnull=True), name="outbox_unpublished"),
        ]

    def __str__(self):
        return f"{self.topic} #{self.pk}"


class IdempotencyKey(models.Model):
    """One per (user, key): the request's fingerprint and the answer to replay.

    Written by `orders_place` in the same statement as the order, so a key never exists without its answer:
    a request that fails leaves nothing behind, and its retry runs afresh. "In flight" is a transaction-level
    advisory lock on (user, key), released by PostgreSQL however the transaction ends."""

    # No index of its own: the unique (user, key) starts with it.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self):
        return f"{self.user_id}:{self.key}"
