"""The pages: the landing page, customer sign-in, the customer's orders and tracking page, the staff live map."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from common.money import money
from tracking import selectors


def home(request):
    """`/`: what Courier is and where to go next (sign in, your orders, the API docs, the admin)."""
    return render(request, "tracking/home.html")


class LoginView(auth_views.LoginView):
    """Customers sign in with email and password; back to the page they came for, else their orders."""

    template_name = "tracking/login.html"
    redirect_authenticated_user = True
    next_page = "tracking:orders"


class LogoutView(auth_views.LogoutView):
    next_page = "tracking:login"


@login_required
def order_list(request):
    return render(request, "tracking/orders.html", {"orders": selectors.customer_orders(user=request.user)})


@login_required
def order_track(request, order_id):
    # 404 for someone else's order, exactly as for a missing one.
    order = selectors.order_for_page(user=request.user, order_id=order_id)
    if order is None:
        raise Http404
    context = {
        "order": order,
        "page": selectors.order_page_context(order=order),
        "number": selectors.order_number(order),
        "items": selectors.order_items(order),
        "total": money(order.total, order.currency),
        "status_label": selectors.STATUS_LABELS[order.status],
        "status_line": selectors.order_status_line(order),
        "money_line": selectors.order_money_line(order),
    }
    return render(request, "tracking/track.html", context)


@staff_member_required
def live_map(request):
    """Inside the admin (its chrome, its staff check): every working driver and active order, live."""
    fleet_config = {
        "ws_path": "/ws/fleet/",
        # Filled in by the page per row; the admin's change URLs take any string as the object id.
        "driver_url": reverse("admin:delivery_driver_change", args=["DRIVER_ID"]),
        "order_url": reverse("admin:orders_order_change", args=["ORDER_ID"]),
    }
    context = {**admin.site.each_context(request), "title": "Live map", "fleet_config": fleet_config}
    return render(request, "tracking/live_map.html", context)
