import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory, bearer_client
from accounts.tokens import access_token_for
from delivery import hot
from delivery.live import FLEET_GROUP, order_group
from delivery.models import Assignment, Driver, DriverPosition
from delivery.services import assignments, dispatch
from delivery.tests.helpers import make_driver, now_utc, offset, paid_order, point, send_points
from orders import services as orders

pytestmark = pytest.mark.django_db

LOCATIONS = "/api/v1/drivers/me/locations"


def iso(seconds_ago: float = 0) -> str:
    return now_utc(seconds_ago).isoformat().replace("+00:00", "Z")


def post_points(client, points):
    return client.post(LOCATIONS, {"points": points}, format="json")


def stream_length() -> int:
    return hot.connection().xlen(hot.LOCATION_STREAM)


# --- GPS ingest -----------------------------------------------------------------------------------


def test_batch_is_stored_in_history_stream_and_newest_becomes_live():
    driver = make_driver(at=None)
    client = bearer_client(driver.user)
    points = [
        {"lat": 52.50, "lng": 13.40, "recorded_at": iso(20), "speed": 4.0},
        {"lat": 52.52, "lng": 13.42, "recorded_at": iso(5), "heading": 90, "speed": 6.0, "accuracy": 8},
        {"lat": 52.51, "lng": 13.41, "recorded_at": iso(10)},
    ]

    response = post_points(client, points)

    assert response.status_code == 202 and response.json() == {"accepted": 3}
    assert DriverPosition.objects.filter(driver=driver).count() == 3
    assert stream_length() == 3
    live = hot.live_position(driver.pk)
    assert (live["lat"], live["lng"], live["heading"], live["speed"]) == (52.52, 13.42, 90.0, 6.0)
    assert 0 < hot.connection().ttl(hot.driver_key(driver.pk)) <= 120


def test_older_batch_never_moves_the_live_position_back():
    driver = make_driver(at=None)
    client = bearer_client(driver.user)
    post_points(client, [{"lat": 52.52, "lng": 13.42, "recorded_at": iso(1)}])

    response = post_points(client, [{"lat": 10.0, "lng": 10.0, "recorded_at": iso(30)}])

    assert response.status_code == 202
    assert hot.live_position(driver.pk)["lat"] == 52.52
    assert DriverPosition.objects.filter(driver=driver).count() == 2  # history keeps every point


def good(**change):
    return {"lat": 52.5, "lng": 13.4, "recorded_at": iso(1), **change}


def test_every_documented_limit_of_a_point_is_the_one_checked(client):
    """The schema's LocationPoint and the hand validation cannot drift: each documented bound is accepted and
    anything beyond it refused."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    fields = schema["components"]["schemas"]["LocationPoint"]["properties"]
    bounded = {name: field for name, field in fields.items() if "maximum" in field}
    assert set(bounded) == {"lat", "lng", "heading", "speed", "accuracy"}
    api = bearer_client(make_driver(at=None).user)

    for name, field in bounded.items():
        for value, accepted in ((field["minimum"], True), (field["maximum"], True),
                                (field["minimum"] - 0.001, False), (field["maximum"] + 0.001, False)):  # fmt: skip
            response = post_points(api, [good(**{name: value})])
            assert (response.status_code == 202) is accepted, (name, value, response.content)


@pytest.mark.parametrize(
    "points",
    [
        [good(lat=90.0001)],
        [good(lat=-91)],
        [good(lng=180.5)],
        [good(lng=-181)],
        [good(lat="52.5")],
        [good(lat=True)],
        [good(lat=None)],
        [{"lng": 13.4, "recorded_at": iso()}],
        [good(recorded_at=iso(-3600))],  # more than 60 s in the future
        [good(recorded_at="2026-11-21T10:00:00")],  # no offset
        [good(recorded_at="yesterday")],
        [good(recorded_at=12)],
        [good(speed=-1)],
        [good(heading=361)],
        [good(), good(), good(lat=95)],  # one bad point spoils the batch
        [],
        [good()] * 101,
        ["not a point"],
    ],
)
def test_bad_batch_is_rejected_and_nothing_is_stored(points):
    driver = make_driver(at=None)

    response = post_points(bearer_client(driver.user), points)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
    assert DriverPosition.objects.count() == 0 and stream_length() == 0
    assert hot.live_position(driver.pk) is None


@pytest.mark.parametrize(
    "body",
    [
        '{"points": [{"lat": NaN, "lng": 1, "recorded_at": "2026-11-21T10:00:00Z"}]}',
        '{"points": [{"lat": 1e999, "lng": 1, "recorded_at": "2026-11-21T10:00:00Z"}]}',  # parses to inf
        '{"points": [{"lat": 1, "lng": -Infinity, "recorded_at": "2026-11-21T10:00:00Z"}]}',
        '{"points": ',
        '{"points": {"lat": 1}}',
        "[]",
    ],
)
def test_malformed_body_is_rejected_and_nothing_is_stored(body):
    driver = make_driver(at=None)

    response = bearer_client(driver.user).post(LOCATIONS, body, content_type="application/json")

    assert response.status_code == 400
    assert DriverPosition.objects.count() == 0 and stream_length() == 0


def test_a_point_as_old_as_the_live_one_replaces_it_and_is_pushed():
    driver = make_driver(at=None)
    order = paid_order()
    send_points(driver, [point(*offset(0.1))])
    dispatch.order_dispatch(order_id=order.pk)
    driver.refresh_from_db()
    layer = get_channel_layer()
    moment = now_utc(-1)  # newer than the point that made the driver live

    async def watch_and_send():
        watcher = await layer.new_channel()
        await layer.group_add(order_group(order.pk), watcher)
        await sync_to_async(send_points)(driver, [point(52.530, 13.40, recorded_at=moment)])
        await sync_to_async(send_points)(driver, [point(52.531, 13.40, recorded_at=moment)])  # same instant, later
        receive = lambda: asyncio.wait_for(layer.receive(watcher), 5)  # noqa: E731
        return await receive(), await receive()

    first, second = async_to_sync(watch_and_send)()

    assert (first["lat"], second["lat"]) == (52.530, 52.531)
    assert first["recorded_at"] == second["recorded_at"]
    assert hot.live_position(driver.pk)["lat"] == 52.531


def test_only_drivers_may_send_locations(customer_api, client):
    assert post_points(customer_api, [good()]).json()["code"] == "not_a_driver"
    assert post_points(customer_api, [good()]).status_code == 403
    assert client.post(LOCATIONS, {"points": [good()]}, content_type="application/json").status_code == 401
    assert DriverPosition.objects.count() == 0


def test_a_token_naming_a_driver_profile_that_is_gone_stores_nothing():
    driver = make_driver(at=None)
    api = bearer_client(driver.user)  # its token names the driver profile
    other = make_driver(at=None)

    stale = access_token_for(UserFactory())
    stale["driver_id"] = str(other.pk)  # a claim about a profile that is not this user's
    driver.delete()
    refused = post_points(api, [good()])
    not_theirs = post_points(APIClient(HTTP_AUTHORIZATION=f"Bearer {stale}"), [good()])

    assert (refused.status_code, refused.json()["code"]) == (403, "not_a_driver")
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (403, "not_a_driver")
    assert DriverPosition.objects.count() == 0 and hot.live_position(other.pk) is None


def test_live_position_is_published_to_the_active_orders_group_and_the_fleet():
    driver = make_driver()
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    client = bearer_client(driver.user)
    layer = get_channel_layer()

    async def watch_and_send():
        # One event loop for the whole exchange: channels-redis buffers receives per loop.
        watcher, staff_map = await layer.new_channel(), await layer.new_channel()
        await layer.group_add(order_group(order.pk), watcher)
        await layer.group_add(FLEET_GROUP, staff_map)
        await sync_to_async(post_points)(client, [good(lat=52.53, speed=5.5, heading=10, recorded_at=iso(-1))])
        return await layer.receive(watcher), await layer.receive(staff_map)

    watched, fleet = async_to_sync(watch_and_send)()

    by_type = {"order.position": watched, "fleet.position": fleet}
    assert by_type["order.position"] == {
        "type": "order.position", "order_id": str(order.pk), "driver_id": str(driver.pk), "lat": 52.53,
        "lng": 13.4, "recorded_at": by_type["order.position"]["recorded_at"], "heading": 10.0, "speed": 5.5,
    }  # fmt: skip
    assert by_type["order.position"]["recorded_at"].endswith("Z")
    assert by_type["fleet.position"]["order_id"] == str(order.pk)
    assert by_type["fleet.position"]["status"] == "busy"


# --- Drivers --------------------------------------------------------------------------------------


def test_staff_make_a_driver_by_email_or_user_id(staff_api):
    by_email, by_id = UserFactory(name="Eve"), UserFactory(name="Ida")

    first = staff_api.post("/api/v1/drivers", {"email": by_email.email.upper()}, format="json")
    second = staff_api.post("/api/v1/drivers", {"user_id": str(by_id.pk)}, format="json")

    assert first.status_code == 201 and second.status_code == 201
    assert first.json() == {"id": str(by_email.driver.pk), "name": "Eve", "status": "offline", "position": None}
    assert Driver.objects.count() == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "nobody@example.com"},
        {"user_id": "999999"},
        {"user_id": "x"},
        {"user_id": "²"},
        {"user_id": "9" * 30},
        {"email": "not an email"},
        {"email": "a@b.c", "user_id": "1"},
    ],
)
def test_make_driver_bad_input(staff_api, body):
    assert staff_api.post("/api/v1/drivers", body, format="json").status_code == 400
    assert Driver.objects.count() == 0


def test_make_driver_twice_conflicts_and_customers_may_not(staff_api, customer_api, customer):
    assert staff_api.post("/api/v1/drivers", {"user_id": customer.pk}, format="json").status_code == 201
    again = staff_api.post("/api/v1/drivers", {"user_id": customer.pk}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "driver_exists")
    assert customer_api.post("/api/v1/drivers", {"email": "a@b.c"}, format="json").status_code == 403
    assert customer_api.get("/api/v1/drivers").status_code == 403


def test_staff_list_drivers_with_last_known_position_and_filter(staff_api):
    moving = make_driver(at=offset(1), name="Moving")
    make_driver(at=None, status="offline", name="Home")
    hot.connection().delete(hot.driver_key(moving.pk))  # expired: the list falls back to history

    everyone = staff_api.get("/api/v1/drivers").json()
    available = staff_api.get("/api/v1/drivers?status=available").json()

    assert {d["name"]: d["position"] is not None for d in everyone["results"]} == {"Moving": True, "Home": False}
    assert everyone["next"] is None
    assert [d["name"] for d in available["results"]] == ["Moving"]
    assert round(available["results"][0]["position"]["lat"], 4) == round(offset(1)[0], 4)
    assert staff_api.get("/api/v1/drivers?status=sleeping").status_code == 400


def test_driver_sets_status(customer_api):
    driver = make_driver(at=None, status="offline")
    client = bearer_client(driver.user)

    assert client.post("/api/v1/drivers/me/status", {"status": "available"}, format="json").json()["status"] == (
        "available"
    )
    assert client.post("/api/v1/drivers/me/status", {"status": "busy"}, format="json").status_code == 400
    assert client.post("/api/v1/drivers/me/status", {}, format="json").status_code == 400
    assert customer_api.post("/api/v1/drivers/me/status", {"status": "available"}, format="json").status_code == 403


def test_going_offline_during_a_delivery_conflicts():
    driver = make_driver()
    dispatch.order_dispatch(order_id=paid_order().pk)

    response = bearer_client(driver.user).post("/api/v1/drivers/me/status", {"status": "offline"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "active_delivery")


# --- Assignments ----------------------------------------------------------------------------------


def test_driver_walks_the_delivery_through_and_is_freed():
    driver = make_driver()
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    client = bearer_client(driver.user)
    mine = client.get("/api/v1/drivers/me/assignment")
    assert mine.status_code == 200 and mine.json()["order"]["id"] == str(order.pk)
    url = f"/api/v1/assignments/{mine.json()['id']}"

    early = client.post(f"{url}/pickup")
    assert (early.status_code, early.json()["code"]) == (409, "invalid_transition")
    assert client.post(f"{url}/accept").json()["status"] == "accepted"
    assert client.post(f"{url}/accept").status_code == 409
    picked = client.post(f"{url}/pickup").json()
    assert (picked["status"], picked["order"]["status"]) == ("picked_up", "picked_up")
    assert client.post(f"{url}/decline").status_code == 409  # too late to give it back
    delivered = client.post(f"{url}/deliver").json()

    assert (delivered["status"], delivered["order"]["status"]) == ("delivered", "delivered")
    assert delivered["accepted_at"] and delivered["picked_up_at"] and delivered["delivered_at"]
    assert Driver.objects.get(pk=driver.pk).status == "available"
    assert client.get("/api/v1/drivers/me/assignment").status_code == 204
    steps = [t["step"] for t in delivered["order"]["timeline"]]
    assert steps[-4:] == ["assign_driver", "accept_delivery", "pick_up", "deliver"]


def test_only_the_assigned_driver_may_act(customer_api):
    driver = make_driver()
    other = make_driver(at=offset(3))
    dispatch.order_dispatch(order_id=paid_order().pk)
    assignment = Assignment.objects.get(driver=driver)

    by_other = bearer_client(other.user).post(f"/api/v1/assignments/{assignment.pk}/accept")
    by_customer = customer_api.post(f"/api/v1/assignments/{assignment.pk}/accept")
    unknown = bearer_client(driver.user).post("/api/v1/assignments/00000000-0000-0000-0000-000000000000/accept")

    assert by_other.status_code == 404 and by_customer.status_code == 403 and unknown.status_code == 404
    assert Assignment.objects.get(pk=assignment.pk).status == "assigned"


def test_decline_over_http_gives_the_order_back():
    driver = make_driver()
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    assignment = Assignment.objects.get(driver=driver)

    response = bearer_client(driver.user).post(f"/api/v1/assignments/{assignment.pk}/decline")

    assert response.status_code == 200 and response.json()["status"] == "declined"
    assert response.json()["order"]["driver"] is None and response.json()["order"]["status"] == "assigned"


# --- Tracking -------------------------------------------------------------------------------------


def test_tracking_shows_driver_position_and_eta(staff_api):
    customer = UserFactory()
    driver = make_driver(at=offset(2), name="Rita Rider")
    order = paid_order(customer=customer)
    dispatch.order_dispatch(order_id=order.pk)

    body = bearer_client(customer).get(f"/api/v1/orders/{order.pk}/tracking").json()

    assert body["order_id"] == str(order.pk) and body["status"] == "assigned"
    assert body["driver"] == {"id": str(driver.pk), "name": "Rita Rider"}
    assert round(body["position"]["lat"], 5) == round(offset(2)[0], 5)
    # ~2 km to the store plus ~1.1 km on to the customer, at the default 5 m/s
    assert 500 < body["eta_seconds"] < 800
    assert staff_api.get(f"/api/v1/orders/{order.pk}/tracking").status_code == 200
    assert bearer_client(driver.user).get(f"/api/v1/orders/{order.pk}/tracking").status_code == 200


def test_tracking_stops_showing_the_rider_once_the_order_is_delivered():
    customer = UserFactory()
    driver = make_driver(at=offset(0.1))
    order = paid_order(customer=customer)
    dispatch.order_dispatch(order_id=order.pk)
    assignment = Assignment.objects.get(order=order)
    for move in (assignments.assignment_accept, assignments.assignment_pick_up, assignments.assignment_deliver):
        move(assignment_id=assignment.pk, driver_id=driver.pk)

    send_points(driver, [point(*offset(5))])  # the rider rides on, to its next job
    body = bearer_client(customer).get(f"/api/v1/orders/{order.pk}/tracking").json()

    assert body["status"] == "delivered" and body["driver"]["id"] == str(driver.pk)
    assert body["position"] is None and body["eta_seconds"] is None


def test_tracking_of_a_cancelled_order_shows_no_rider_position():
    customer = UserFactory()
    driver = make_driver(at=offset(0.1))
    order = paid_order(customer=customer)
    dispatch.order_dispatch(order_id=order.pk)

    orders.order_cancel_and_settle(order_id=order.pk, reason="customer")
    send_points(driver, [point(*offset(3))])
    body = bearer_client(customer).get(f"/api/v1/orders/{order.pk}/tracking").json()

    assert body["status"] == "cancelled" and body["position"] is None


def test_tracking_of_someone_elses_order_is_404(customer_api):
    order = paid_order()

    assert customer_api.get(f"/api/v1/orders/{order.pk}/tracking").status_code == 404
    assert customer_api.get("/api/v1/orders/not-a-uuid/tracking").status_code == 404


def test_tracking_before_a_driver_has_no_position():
    customer = UserFactory()
    order = paid_order(customer=customer)

    body = bearer_client(customer).get(f"/api/v1/orders/{order.pk}/tracking").json()

    assert body == {"order_id": str(order.pk), "status": "paid", "driver": None, "position": None,
                    "eta_seconds": None}  # fmt: skip


def test_future_point_within_the_skew_is_accepted():
    driver = make_driver(at=None)
    response = post_points(bearer_client(driver.user), [good(recorded_at=iso(-30))])
    assert response.status_code == 202
    assert json.loads(response.content) == {"accepted": 1}
    assert DriverPosition.objects.get().recorded_at > timezone.now() + timedelta(seconds=20)


def test_offsets_postgresql_cannot_store_are_kept_as_utc():
    """Python reads offsets up to ±23:59, PostgreSQL stores up to ±15:59: the point is stored in UTC."""
    driver = make_driver(at=None)
    earlier, later = now_utc(5), now_utc(3)
    far_east = earlier.astimezone(timezone.get_fixed_timezone(16 * 60)).isoformat()  # +16:00
    far_west = later.astimezone(timezone.get_fixed_timezone(-(23 * 60 + 59))).isoformat()  # -23:59

    response = post_points(bearer_client(driver.user), [good(recorded_at=far_east), good(recorded_at=far_west)])

    assert response.status_code == 202, response.content
    assert sorted(DriverPosition.objects.values_list("recorded_at", flat=True)) == [earlier, later]
    assert hot.live_position(driver.pk) is not None


@pytest.mark.parametrize("recorded_at", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_outside_the_calendar_in_utc_are_400(recorded_at):
    driver = make_driver(at=None)

    response = post_points(bearer_client(driver.user), [good(), good(recorded_at=recorded_at)])

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [
        {"field": "points.1.recorded_at", "message": "An RFC 3339 time with offset is required.", "code": "invalid"}
    ]
    assert DriverPosition.objects.count() == 0 and stream_length() == 0


def test_a_point_from_year_one_is_history_not_a_crash():
    driver = make_driver(at=None)

    response = post_points(bearer_client(driver.user), [good(recorded_at="0001-01-01T00:00:00Z")])

    assert response.status_code == 202, response.content
    assert DriverPosition.objects.get().recorded_at.year == 1
    assert hot.live_position(driver.pk) is None  # far too old to be anyone's live position
