from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.response import Response
from rest_framework.views import APIView

from common.fields import JSONNumberField
from common.ids import bigint_id
from common.pagination import CursorPage
from common.problems import PROBLEM_CONTENT_TYPE, Problem
from orders import selectors, services
from orders.idempotency import request_fingerprint
from orders.models import Order

MAX_LINES = 100
MAX_QUANTITY = 1000


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

    class Driver(serializers.Serializer):  # an `orders.drivers.OrderDriver`
        id = serializers.CharField()
        name = serializers.CharField()

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
        return self.Driver(order.driver).data if order.driver else None


def _product_pk(value: str) -> int | None:
    """Product ids are opaque strings to clients; ours are bigints. Anything else names no product."""
    return bigint_id(value)


class OrderCreateInput(serializers.Serializer):
    """The request's shape only. What needs the database (store and products active, of that store, no duplicate
    lines, one currency) is checked where the order is written (`services.order_place`), in the same statement."""

    class Line(serializers.Serializer):
        product_id = serializers.CharField(max_length=32)
        quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)

    class Delivery(serializers.Serializer):
        address = serializers.CharField(max_length=500)
        lat = JSONNumberField(min_value=-90, max_value=90)
        lng = JSONNumberField(min_value=-180, max_value=180)

    store_id = serializers.UUIDField()
    items = Line(many=True, allow_empty=False, max_length=MAX_LINES)
    delivery = Delivery()
    payment_token = serializers.CharField(max_length=255)


# What the client reads for each rule `order_place` enforces.
REJECTION_MESSAGES = {
    "unknown_store": "No such active store.",
    "unknown_product": "No such active product.",
    "wrong_store": "Product of another store.",
    "duplicate": "Duplicate product line.",
    "mixed_currency": "An order is paid in one currency; this product is priced in another than the first line.",
}


def _rejection(exc: services.OrderRejected, line_count: int) -> serializers.ValidationError:
    store = [ErrorDetail(REJECTION_MESSAGES[code], code=code) for line, code in exc.problems if line is None]
    if store:
        return serializers.ValidationError({"store_id": store})
    lines = [{} for _ in range(line_count)]
    for line, code in exc.problems:
        lines[line] = {"product_id": [ErrorDetail(REJECTION_MESSAGES[code], code=code)]}
    return serializers.ValidationError({"items": lines})


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
        lines = [services.OrderLineRequest(_product_pk(line["product_id"]), line["quantity"]) for line in v["items"]]
        try:
            placed = services.order_place(
                customer_id=request.user.pk, idempotency_key=key, fingerprint=request_fingerprint(request.data),
                store_id=v["store_id"], delivery_address=v["delivery"]["address"],
                lines=lines,
                delivery_lat=v["delivery"]["lat"], delivery_lng=v["delivery"]["lng"], payment_token=v["payment_token"],
            )  # fmt: skip
        except services.OrderRejected as exc:
            raise _rejection(exc, len(v["items"])) from exc
        except services.IdempotencyKeyReused as exc:
            raise Problem("This Idempotency-Key was already used with another request body.",
                          code="idempotency_key_reused", status=422) from exc  # fmt: skip
        except services.IdempotencyKeyInFlight as exc:
            raise Problem("A request with this Idempotency-Key is still being processed.",
                          code="idempotency_in_flight", status=409) from exc  # fmt: skip
        # The answer is the JSON the statement returned (and stored for replays): sent as it is, never re-read.
        response = HttpResponse(
            placed.body, status=placed.status,
            content_type=PROBLEM_CONTENT_TYPE if placed.status >= 400 else "application/json",
        )  # fmt: skip
        if placed.replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(parameters=[OrderFilter], responses=OrderOutput(many=True))
    def get(self, request):
        filters = OrderFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        orders = selectors.orders_visible_to(request.user).with_details()
        if "status" in filters.validated_data:
            orders = orders.filter(status=filters.validated_data["status"])
        paginator = CursorPage()
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderOutput(selectors.orders_with_drivers(page), many=True).data)


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
