import math
import re

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.pagination import CursorPage
from common.problems import PROBLEM_CONTENT_TYPE, Problem
from inventory.models import Product, Store
from orders import selectors, services
from orders.idempotency import Answer, idempotent, request_fingerprint
from orders.models import Order

MAX_LINES = 100
MAX_QUANTITY = 1000


class FiniteFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class OrderOutput(serializers.Serializer):
    """The order as every client sees it (contract v1)."""

    class Line(serializers.Serializer):
        product_id = serializers.CharField()
        name = serializers.CharField()
        quantity = serializers.IntegerField()
        unit_price = serializers.IntegerField()

    class Delivery(serializers.Serializer):
        address = serializers.CharField(source="delivery_address")
        lat = serializers.FloatField(source="delivery_lat")
        lng = serializers.FloatField(source="delivery_lng")

    class PaymentOut(serializers.Serializer):
        status = serializers.CharField()
        amount = serializers.IntegerField()
        refunded_amount = serializers.IntegerField()

    class Driver(serializers.Serializer):
        id = serializers.CharField(source="driver_id")
        name = serializers.CharField(source="driver_user.name")

    class Step(serializers.Serializer):
        step = serializers.CharField()
        status = serializers.CharField()
        at = serializers.DateTimeField()
        detail = serializers.CharField()

    id = serializers.UUIDField()
    status = serializers.CharField()
    cancel_reason = serializers.CharField(allow_null=True)
    store_id = serializers.UUIDField()
    customer_id = serializers.CharField()
    total = serializers.IntegerField()
    currency = serializers.CharField()
    items = Line(source="lines", many=True)
    delivery = Delivery(source="*")
    payment = serializers.SerializerMethodField()
    driver = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    timeline = Step(many=True)

    @extend_schema(responses=PaymentOut(allow_null=True))
    def get_payment(self, order) -> dict | None:
        payment = getattr(order, "payment", None)
        return self.PaymentOut(payment).data if payment else None

    @extend_schema(responses=Driver(allow_null=True))
    def get_driver(self, order) -> dict | None:
        return self.Driver(order).data if order.driver_id else None


def _product_pk(value: str) -> int | None:
    """Product ids are opaque strings to clients; ours are bigints. Anything else names no product."""
    return int(value) if re.fullmatch(r"[0-9]{1,18}", value) else None


class OrderCreateInput(serializers.Serializer):
    class Line(serializers.Serializer):
        product_id = serializers.CharField(max_length=32)
        quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)

    class Delivery(serializers.Serializer):
        address = serializers.CharField(max_length=500)
        lat = FiniteFloatField(min_value=-90, max_value=90)
        lng = FiniteFloatField(min_value=-180, max_value=180)

    store_id = serializers.UUIDField()
    items = Line(many=True, allow_empty=False, max_length=MAX_LINES)
    delivery = Delivery()
    payment_token = serializers.CharField(max_length=255)

    def validate(self, attrs):
        store = Store.objects.filter(pk=attrs["store_id"], is_active=True).first()
        if store is None:
            raise serializers.ValidationError({"store_id": ["No such active store."]}, code="unknown_store")
        ids = [line["product_id"] for line in attrs["items"]]
        products = Product.objects.in_bulk([pk for pk in map(_product_pk, ids) if pk is not None])
        errors = {}
        for index, product_id in enumerate(ids):
            product = products.get(_product_pk(product_id))
            if ids.index(product_id) != index:
                errors[index] = {"product_id": [serializers.ErrorDetail("Duplicate product line.", code="duplicate")]}
            elif product is None or not product.is_active:
                errors[index] = {
                    "product_id": [serializers.ErrorDetail("No such active product.", code="unknown_product")]
                }
            elif product.store_id != store.pk:
                errors[index] = {
                    "product_id": [serializers.ErrorDetail("Product of another store.", code="wrong_store")]
                }
        if errors:
            raise serializers.ValidationError({"items": [errors.get(i, {}) for i in range(len(ids))]})
        attrs["store"] = store
        attrs["lines"] = [
            services.LineInput(product=products[_product_pk(line["product_id"])], quantity=line["quantity"])
            for line in attrs["items"]
        ]
        return attrs


class OrderFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
    description="1..255 characters, unique per request you mean; retries reuse it. Kept at least 24 h.",
)  # fmt: skip


def _idempotency_key(request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not 1 <= len(key) <= 255:
        raise Problem("The Idempotency-Key header is required (1..255 characters).", code="idempotency_key_required")
    return key


class OrderListApi(APIView):
    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=OrderCreateInput,
        responses={
            201: OrderOutput,
            400: OpenApiResponse(description="Invalid input; nothing written."),
            409: OpenApiResponse(description="`out_of_stock` (nothing held) or `idempotency_in_flight`."),
            422: OpenApiResponse(description="Idempotency-Key reused with another body."),
        },
    )
    def post(self, request):
        key = _idempotency_key(request)
        data = OrderCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data

        def place() -> Answer:
            order = services.order_create(
                customer=request.user, store=v["store"], lines=v["lines"], delivery_address=v["delivery"]["address"],
                delivery_lat=v["delivery"]["lat"], delivery_lng=v["delivery"]["lng"], payment_token=v["payment_token"],
            )  # fmt: skip
            return Answer(status.HTTP_201_CREATED, OrderOutput(order).data)

        answer = idempotent(user=request.user, key=key, fingerprint=request_fingerprint(request.data), action=place)
        if not answer.replayed:
            return Response(answer.body, status=answer.status)
        content_type = PROBLEM_CONTENT_TYPE if answer.status >= 400 else None
        return Response(answer.body, status=answer.status, content_type=content_type,
                        headers={"Idempotent-Replayed": "true"})  # fmt: skip

    @extend_schema(parameters=[OrderFilter], responses=OrderOutput(many=True))
    def get(self, request):
        filters = OrderFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        orders = selectors.orders_visible_to(request.user).select_related("payment", "driver_user")
        orders = orders.prefetch_related("lines", "timeline")
        if "status" in filters.validated_data:
            orders = orders.filter(status=filters.validated_data["status"])
        paginator = CursorPage()
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderOutput)
    def get(self, request, order_id):
        return Response(OrderOutput(selectors.order_get_for(user=request.user, order_id=order_id)).data)


class OrderCancelApi(APIView):
    @extend_schema(request=None, responses={200: OrderOutput, 409: OpenApiResponse(description="`not_cancellable`")})
    def post(self, request, order_id):
        order = selectors.order_get_for(user=request.user, order_id=order_id)
        if not (request.user.is_staff or order.customer_id == request.user.pk):
            raise Problem("Only the customer or staff may cancel an order.", code="permission_denied", status=403)
        reason = Order.CancelReason.CUSTOMER if order.customer_id == request.user.pk else Order.CancelReason.STAFF
        services.order_cancel_and_settle(order_id=order.pk, reason=reason)
        return Response(OrderOutput(selectors.order_get_for(user=request.user, order_id=order.pk)).data)
