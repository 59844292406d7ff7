"""The pages: customer sign-in, the customer's orders and live tracking page, and the staff live map."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from orders.models import Order
from tracking import selectors


class LoginView(auth_views.LoginView):
    """Customers sign in with email and password; back to the page they came for, else their orders."""

    template_name = "tracking/login.html"
    redirect_authenticated_user = True
    next_page = "tracking:orders"


class LogoutView(auth_views.LogoutView):
    next_page = "tracking:login"


@login_required
def order_list(request):
    orders = Order.objects.filter(customer=request.user).select_related("store").order_by("-created_at")[:50]
    return render(request, "tracking/orders.html", {"orders": orders})


@login_required
def order_track(request, order_id):
    # 404 for someone else's order, exactly as for a missing one.
    order = selectors.order_for_watcher(user=request.user, order_id=order_id)
    if order is None:
        raise Http404
    return render(request, "tracking/track.html", {"order": order, "page": selectors.order_page_context(order=order)})


@staff_member_required
def live_map(request):
    """Inside the admin (its chrome, its staff check): every working driver and active order, live."""
    context = {**admin.site.each_context(request), "title": "Live map", "ws_path": "/ws/fleet/"}
    return render(request, "tracking/live_map.html", context)
