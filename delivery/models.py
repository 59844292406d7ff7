import uuid

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q

from orders.models import Order


class Driver(models.Model):
    """A user who delivers. Made by staff; its status is owned by the platform."""

    class Status(models.TextChoices):
        OFFLINE = "offline"  # not working; never offered an order
        AVAILABLE = "available"  # working and free: a dispatch candidate while its live position is fresh
        BUSY = "busy"  # holds exactly one active assignment (set and cleared by dispatch / delivery)

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="driver")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Driver {self.pk} ({self.user})"


class Assignment(models.Model):
    """One driver delivering one order. At most one active per driver and per order (partial unique indexes)."""

    class Status(models.TextChoices):
        ASSIGNED = "assigned"  # offered to the driver by dispatch; waiting for accept or decline
        ACCEPTED = "accepted"  # the driver is on the way to the store
        PICKED_UP = "picked_up"  # the driver has the goods
        DELIVERED = "delivered"  # final: handed over
        DECLINED = "declined"  # final: the driver gave it back; this driver is never offered the order again
        CANCELLED = "cancelled"  # final: the order was cancelled, or staff reassigned it

    ACTIVE = (Status.ASSIGNED, Status.ACCEPTED, Status.PICKED_UP)
    # The only allowed moves, checked in one place (delivery.services.assignments._assignment_move).
    TRANSITIONS = {
        Status.ASSIGNED: {Status.ACCEPTED, Status.DECLINED, Status.CANCELLED},
        Status.ACCEPTED: {Status.PICKED_UP, Status.DECLINED, Status.CANCELLED},
        Status.PICKED_UP: {Status.DELIVERED},
        Status.DELIVERED: set(),
        Status.DECLINED: set(),
        Status.CANCELLED: set(),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="assignments")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ASSIGNED)
    assigned_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The last line of defence against double-booking, whatever races the code loses.
            models.UniqueConstraint(
                fields=["driver"], condition=Q(status__in=["assigned", "accepted", "picked_up"]),
                name="assignment_one_active_per_driver",
            ),
            models.UniqueConstraint(
                fields=["order"], condition=Q(status__in=["assigned", "accepted", "picked_up"]),
                name="assignment_one_active_per_order",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["order", "status"], name="assignment_order_status")]

    def __str__(self):
        return f"Assignment {self.pk} ({self.status})"


class DispatchRequest(models.Model):
    """An order looking for a driver: from `paid` (or a decline) until a driver is claimed or it is cancelled."""

    class Status(models.TextChoices):
        WAITING = "waiting"  # no driver yet: retried, or parked until a driver frees up nearby or the timeout
        DONE = "done"  # a driver was claimed
        CANCELLED = "cancelled"  # the order was cancelled (no driver in time, or by customer/staff)

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="dispatch_request")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    waiting_since = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    # When the attempt that drives this request next is due (None: right after commit). Long past, and still
    # waiting: nobody is driving it (a lost task, a dead worker), and the sweep re-drives it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["waiting_since"], condition=Q(status="waiting"), name="dispatch_waiting"),
        ]

    def __str__(self):
        return f"Dispatch of {self.order_id} ({self.status})"


class DriverPosition(models.Model):
    """Append-only GPS history (the cold copy). Written in one bulk insert per batch, never updated."""

    id = models.BigAutoField(primary_key=True)
    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="+", db_index=False)
    lat = models.FloatField()
    lng = models.FloatField()
    recorded_at = models.DateTimeField()
    heading = models.FloatField(null=True, blank=True)
    speed = models.FloatField(null=True, blank=True)
    accuracy = models.FloatField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        indexes = [
            # A driver's track and last known position.
            models.Index(fields=["driver", "-recorded_at"], name="position_driver_recent"),
            # Retention deletes by age; rows arrive roughly in time order, so a tiny BRIN index serves it
            # without the insert cost of a second b-tree.
            BrinIndex(fields=["recorded_at"], name="position_recorded_brin"),
        ]

    def __str__(self):
        return f"{self.driver_id} @ {self.lat},{self.lng} {self.recorded_at:%H:%M:%S}"
