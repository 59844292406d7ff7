"""Drivers: profiles, going available or offline, and the claim/free pair dispatch and assignments use."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import Conflict, NotAllowed
from delivery import events, hot
from delivery.models import Driver

DriverStatus = Driver.Status


class NotADriver(NotAllowed):
    default_code = "not_a_driver"

    def __init__(self, detail: str = "Only drivers may do this.", **kwargs):
        super().__init__(detail, **kwargs)


class DriverExists(Conflict):
    default_code = "driver_exists"


class ActiveDelivery(Conflict):
    default_code = "active_delivery"


def driver_create(*, user) -> Driver:
    try:
        with transaction.atomic():
            return Driver.objects.create(user=user)
    except IntegrityError:
        raise DriverExists("This user already has a driver profile.")


def driver_set_status(*, driver_id: int, status: str) -> Driver:
    """The driver goes `available` or `offline`. `busy` belongs to the platform: a busy driver cannot go
    offline (409) and asking to be available while busy changes nothing."""
    with transaction.atomic():
        driver = Driver.objects.select_for_update().get(pk=driver_id)
        if driver.status == DriverStatus.BUSY:
            if status == DriverStatus.OFFLINE:
                raise ActiveDelivery("Finish the active delivery before going offline.")
            return driver
        if driver.status != status:
            driver.status, driver.status_changed_at = status, timezone.now()
            driver.save(update_fields=["status", "status_changed_at"])
    if status == DriverStatus.AVAILABLE:
        transaction.on_commit(lambda: _driver_became_available(driver_id))
    else:
        transaction.on_commit(lambda: hot.driver_drop_candidate(driver_id))
    return driver


def _driver_became_available(driver_id: int) -> None:
    """A free driver with a live position is a candidate at once, and waiting orders nearby need not wait
    for their next backoff tick."""
    if hot.driver_make_candidate(driver_id):
        events.driver_became_candidate.send(sender=None, driver_id=driver_id)


def driver_claim(*, driver_id: int) -> bool:
    """available -> busy as one conditional UPDATE (inside the caller's transaction); False if it was not
    available. Of two transactions racing for one driver only one matches the row: the other re-reads it after
    the first commits and finds it busy."""
    claimed = Driver.objects.filter(pk=driver_id, status=DriverStatus.AVAILABLE).update(
        status=DriverStatus.BUSY, status_changed_at=timezone.now()
    )
    return claimed == 1


def driver_free(*, driver_id: int) -> None:
    """The driver's active assignment ended (inside the caller's transaction)."""
    Driver.objects.filter(pk=driver_id, status=DriverStatus.BUSY).update(
        status=DriverStatus.AVAILABLE, status_changed_at=timezone.now()
    )
    transaction.on_commit(lambda: _driver_became_available(driver_id))
