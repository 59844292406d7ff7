import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from inventory.models import Product, Store


class Order(models.Model):
    class Status(models.TextChoices):
        RESERVED = "reserved"  # stock held, payment not yet taken
        PAID = "paid"  # charged and stock committed; waiting for a driver
        ASSIGNED = "assigned"  # a driver holds it (driver may be null briefly after a decline, while re-dispatching)
        PICKED_UP = "picked_up"  # on its way; no longer cancellable
        DELIVERED = "delivered"  # final
        CANCELLED = "cancelled"  # final; stock and money given back

    class CancelReason(models.TextChoices):
        PAYMENT_DECLINED = "payment_declined"
        PAYMENT_FAILED = "payment_failed"
        NO_DRIVER = "no_driver"
        CUSTOMER = "customer"
        STAFF = "staff"

    # The only allowed moves; `order_transition` checks every status change against this.
    TRANSITIONS = {
        Status.RESERVED: {Status.PAID, Status.CANCELLED},
        Status.PAID: {Status.ASSIGNED, Status.CANCELLED},
        Status.ASSIGNED: {Status.ASSIGNED, Status.PICKED_UP, Status.CANCELLED},
        Status.PICKED_UP: {Status.DELIVERED},
        Status.DELIVERED: set(),
        Status.CANCELLED: set(),
    }
    FINAL = {Status.DELIVERED, Status.CANCELLED}
    ACTIVE = {Status.RESERVED, Status.PAID, Status.ASSIGNED, Status.PICKED_UP}

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RESERVED)
    # null, not "": the contract's `cancel_reason` is null unless cancelled, and a CHECK ties it to the status
    cancel_reason = models.CharField(max_length=32, choices=CancelReason.choices, null=True, blank=True)  # noqa: DJ001
    total = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    delivery_address = models.CharField(max_length=500)
    delivery_lat = models.FloatField()
    delivery_lng = models.FloatField()
    payment_token = models.CharField(max_length=255)
    # The driver lives in an upper app: referenced by its id, and by its user for access checks.
    driver_id = models.BigIntegerField(null=True, blank=True)
    driver_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="driven_orders"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

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
            )
        ]

    def __str__(self):
        return f"Order {self.id}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.PositiveIntegerField()

    class Meta:
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
        return f"{self.status} {self.amount} {self.currency}"


class TimelineEntry(models.Model):
    """The saga log: one row per step attempt and per compensation."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        DECLINED = "declined"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="timeline")
    step = models.CharField(max_length=32)
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
            models.Index(fields=["created_at"], condition=Q(published_at__isnull=True), name="outbox_unpublished"),
        ]

    def __str__(self):
        return f"{self.topic} #{self.pk}"


class IdempotencyKey(models.Model):
    """One per (user, key): the request's fingerprint and, once finished, the answer to replay."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)  # null while the first request is in flight
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self):
        return f"{self.user_id}:{self.key}"


class GatewayLedgerEntry(models.Model):
    """The mock payment gateway's own books: what an outside gateway would record on its side.

    Unique per idempotency key, as a real gateway guarantees: the same key never charges twice.
    """

    class Kind(models.TextChoices):
        CHARGE = "charge"
        REFUND = "refund"

    idempotency_key = models.CharField(max_length=255, unique=True)
    reference = models.CharField(
        max_length=64, db_index=True, help_text="What the merchant says it is for: the order id."
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.kind} {self.amount} {self.currency} ({self.idempotency_key})"
