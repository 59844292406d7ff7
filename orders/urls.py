from django.urls import path

from orders import api

urlpatterns = [
    path("orders", api.OrderListApi.as_view(), name="orders"),
    path("orders/<uuid:order_id>", api.OrderDetailApi.as_view(), name="order"),
    path("orders/<uuid:order_id>/cancel", api.OrderCancelApi.as_view(), name="order-cancel"),
]
