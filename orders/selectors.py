from django.db.models import Q, QuerySet
from django.http import Http404

from orders.models import Order


def orders_visible_to(user) -> QuerySet[Order]:
    """Staff see every order; others their own, as customer or as its driver."""
    orders = Order.objects.all()
    if not user.is_staff:
        orders = orders.filter(Q(customer=user) | Q(driver_user=user))
    return orders


def order_get_for(*, user, order_id) -> Order:
    """404 both for a missing order and for someone else's: existence is never revealed."""
    order = (
        orders_visible_to(user)
        .select_related("payment", "driver_user")
        .prefetch_related("lines", "timeline")
        .filter(pk=order_id)
        .first()
    )
    if order is None:
        raise Http404
    return order
