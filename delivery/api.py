import math
import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from common.ids import bigint_id
from common.pagination import CursorPage
from delivery import selectors
from delivery.models import Assignment, Driver
from delivery.services import assignments, drivers, ingest
from orders.api import OrderOutput
from orders.selectors import order_get_for, order_with_details

MAX_POINTS = 100
# What fromisoformat() reads but RFC 3339 is not (e.g. a NUL before the offset) is refused by this first.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Phones' clocks drift; a point further ahead than this is a broken clock, not a fast network.
MAX_FUTURE_SKEW = timedelta(seconds=60)
# A point's numbers, one definition for the schema (LocationPoint) and the check (validate_points):
# name -> (required, lowest, highest, unit). Beyond these a value is a broken sensor, not a fast rider.
POINT_NUMBERS = {
    "lat": (True, -90, 90, "degrees"),
    "lng": (True, -180, 180, "degrees"),
    "heading": (False, 0, 360, "degrees from north"),
    "speed": (False, 0, 1000, "m/s"),
    "accuracy": (False, 0, 1e6, "metres"),
}


def _driver_of(request) -> dict:
    driver = selectors.driver_for_user(user_id=request.user.pk)
    if driver is None:
        raise drivers.NotADriver()
    return driver


# --- Drivers --------------------------------------------------------------------------------------


class PositionOutput(serializers.Serializer):
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    recorded_at = serializers.CharField()
    heading = serializers.FloatField(allow_null=True)
    speed = serializers.FloatField(allow_null=True)


class DriverOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField(source="user.name")
    status = serializers.CharField()
    position = serializers.SerializerMethodField()

    @extend_schema(responses=PositionOutput(allow_null=True))
    def get_position(self, driver) -> dict | None:
        positions = self.context.get("positions")
        if positions is None:
            positions = selectors.last_known_positions([driver.pk])
        return positions.get(driver.pk)


def _driver_data(driver_id) -> dict:
    return DriverOutput(Driver.objects.select_related("user").get(pk=driver_id)).data


class DriverListApi(APIView):
    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        user_id = serializers.CharField(required=False, max_length=32)
        email = serializers.EmailField(required=False)

        def validate(self, attrs):
            if ("user_id" in attrs) == ("email" in attrs):
                raise serializers.ValidationError("Give exactly one of user_id or email.", code="one_of")
            if "user_id" in attrs:
                users = User.objects.filter(pk=bigint_id(attrs["user_id"]))
            else:
                users = User.objects.filter(email=User.objects.normalize_email(attrs["email"]))
            user = users.first()
            if user is None:
                field = "user_id" if "user_id" in attrs else "email"
                raise serializers.ValidationError({field: ["No such user."]}, code="unknown_user")
            attrs["user"] = user
            return attrs

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Driver.Status.choices, required=False)

    @extend_schema(
        request=InputSerializer,
        responses={201: DriverOutput, 400: OpenApiResponse(description="Unknown user"),
                   409: OpenApiResponse(description="`driver_exists`")},
    )  # fmt: skip
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        driver = drivers.driver_create(user=data.validated_data["user"])
        return Response(_driver_data(driver.pk), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[FilterSerializer], responses=DriverOutput(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        listed = Driver.objects.select_related("user")
        if "status" in filters.validated_data:
            listed = listed.filter(status=filters.validated_data["status"])
        paginator = CursorPage()
        page = paginator.paginate_queryset(listed, request, view=self)
        positions = selectors.last_known_positions([driver.pk for driver in page])
        return paginator.get_paginated_response(DriverOutput(page, many=True, context={"positions": positions}).data)


class DriverStatusApi(APIView):
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=[Driver.Status.AVAILABLE, Driver.Status.OFFLINE])

    @extend_schema(
        request=InputSerializer,
        responses={200: DriverOutput, 403: OpenApiResponse(description="`not_a_driver`"),
                   409: OpenApiResponse(description="`active_delivery`: going offline during a delivery")},
        description="A busy driver stays busy: `available` changes nothing until the delivery ends.",
    )  # fmt: skip
    def post(self, request):
        driver = _driver_of(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        drivers.driver_set_status(driver_id=driver["id"], status=data.validated_data["status"])
        return Response(_driver_data(driver["id"]))


def _number(point: dict, name: str, errors: dict, *, required: bool, low: float, high: float) -> float | None:
    value = point.get(name)
    if value is None:
        if required:
            errors[name] = [serializers.ErrorDetail("This field is required.", code="required")]
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors[name] = [serializers.ErrorDetail("A number is required.", code="invalid")]
        return None
    value = float(value)
    if not math.isfinite(value):
        errors[name] = [serializers.ErrorDetail("Must be a finite number.", code="not_finite")]
    elif not low <= value <= high:
        errors[name] = [serializers.ErrorDetail(f"Must be between {low:g} and {high:g}.", code="out_of_range")]
    return value


def _moment(point: dict, errors: dict, latest: datetime) -> datetime | None:
    value = point.get("recorded_at")
    if value is None:
        errors["recorded_at"] = [serializers.ErrorDetail("This field is required.", code="required")]
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) and RFC3339.fullmatch(value) else None
        # Stored in UTC: PostgreSQL refuses offsets beyond ±15:59 (Python takes up to ±23:59), and a time
        # near year 1 or 9999 whose UTC falls outside the calendar has no place anywhere.
        moment = moment.astimezone(UTC) if moment is not None and moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        errors["recorded_at"] = [serializers.ErrorDetail("An RFC 3339 time with offset is required.", code="invalid")]
        return None
    if moment > latest:
        errors["recorded_at"] = [serializers.ErrorDetail("Lies in the future.", code="in_future")]
    return moment


# The documented point, made from POINT_NUMBERS: what the schema says is what `validate_points` checks.
LocationPoint = type("LocationPoint", (serializers.Serializer,), {
    "__module__": __name__,
    **{name: serializers.FloatField(required=required, allow_null=not required, min_value=low, max_value=high,
                                    help_text=unit)
       for name, (required, low, high, unit) in POINT_NUMBERS.items()},
    "recorded_at": serializers.DateTimeField(help_text="RFC 3339 with an offset; not more than 60 s in the future."),
})  # fmt: skip


class LocationBatchDoc(serializers.Serializer):
    """The documented shape of a batch (validated by hand in LocationsApi, see there)."""

    points = LocationPoint(many=True, min_length=1, max_length=MAX_POINTS)


class LocationsApi(APIView):
    class InputSerializer(serializers.Serializer):
        """The whole batch is checked before anything is stored. Checked by hand (`validate_points`): this is
        the hottest path of the platform and DRF's per-field machinery costs more than the insert."""

        points = serializers.ListField(child=serializers.DictField(), min_length=1, max_length=MAX_POINTS)

        def validate_points(self, points):
            latest = timezone.now() + MAX_FUTURE_SKEW
            errors, clean = [], []
            for point in points:
                problems = {}
                clean.append({
                    **{name: _number(point, name, problems, required=required, low=low, high=high)
                       for name, (required, low, high, _) in POINT_NUMBERS.items()},
                    "recorded_at": _moment(point, problems, latest),
                })  # fmt: skip
                errors.append(problems)
            if any(errors):
                raise serializers.ValidationError(errors)
            return clean

    @extend_schema(
        request=LocationBatchDoc,
        responses={202: inline_serializer("LocationsAccepted", {"accepted": serializers.IntegerField()}),
                   400: OpenApiResponse(description="Any invalid point: nothing of the batch is stored"),
                   403: OpenApiResponse(description="`not_a_driver`")},
    )  # fmt: skip
    def post(self, request):
        # The token names the driver: the one statement that stores the batch also checks it (no lookup first).
        if request.user.driver_id is None:
            raise drivers.NotADriver()
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        accepted = ingest.driver_locations_ingest(user_id=request.user.pk, driver_id=request.user.driver_id,
                                                  points=data.validated_data["points"])  # fmt: skip
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)


# --- Assignments ----------------------------------------------------------------------------------


class AssignmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    order = OrderOutput()
    status = serializers.CharField()
    assigned_at = serializers.DateTimeField()
    accepted_at = serializers.DateTimeField(allow_null=True)
    picked_up_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


def _assignment_data(assignment_id) -> dict:
    assignment = Assignment.objects.get(pk=assignment_id)
    assignment.order = order_with_details(order_id=assignment.order_id)
    return AssignmentOutput(assignment).data


class MyAssignmentApi(APIView):
    @extend_schema(
        responses={200: AssignmentOutput, 204: OpenApiResponse(description="No active assignment"),
                   403: OpenApiResponse(description="`not_a_driver`")},
    )  # fmt: skip
    def get(self, request):
        driver = _driver_of(request)
        assignment = selectors.active_assignment(driver_id=driver["id"])
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_assignment_data(assignment.pk))


def _assignment_action(move):
    class AssignmentActionApi(APIView):
        @extend_schema(
            request=None,
            responses={200: AssignmentOutput, 404: OpenApiResponse(description="No such assignment of yours"),
                       409: OpenApiResponse(description="`invalid_transition`")},
        )  # fmt: skip
        def post(self, request, assignment_id):
            driver = _driver_of(request)
            assignment = move(assignment_id=assignment_id, driver_id=driver["id"])
            return Response(_assignment_data(assignment.pk))

    AssignmentActionApi.__name__ = AssignmentActionApi.__qualname__ = f"Assignment{move.__name__.title()}Api"
    return AssignmentActionApi


AssignmentAcceptApi = _assignment_action(assignments.assignment_accept)
AssignmentDeclineApi = _assignment_action(assignments.assignment_decline)
AssignmentPickUpApi = _assignment_action(assignments.assignment_pick_up)
AssignmentDeliverApi = _assignment_action(assignments.assignment_deliver)


# --- Tracking -------------------------------------------------------------------------------------


class TrackingOutput(serializers.Serializer):
    class DriverRef(serializers.Serializer):
        id = serializers.CharField()
        name = serializers.CharField()

    order_id = serializers.UUIDField()
    status = serializers.CharField()
    driver = DriverRef(allow_null=True)
    position = PositionOutput(allow_null=True)
    eta_seconds = serializers.IntegerField(allow_null=True)


class OrderTrackingApi(APIView):
    @extend_schema(responses={200: TrackingOutput, 404: OpenApiResponse(description="No such order of yours")})
    def get(self, request, order_id):
        order = order_get_for(user=request.user, order_id=order_id)
        return Response(selectors.order_tracking(order=order))
