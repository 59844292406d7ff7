"""The order socket and the fleet socket over Channels' WebsocketCommunicator, through the real auth stack
(origin check, session, JWT) and the real channel layer on Redis; news comes from the real services."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.tests.factories import UserFactory
from delivery.services import assignments
from orders import services as orders
from orders.events import outbox_publish
from tracking.auth import websocket_auth_stack
from tracking.routing import websocket_urlpatterns
from tracking.tests.conftest import active_assignment, make_driver, place_order, post_points, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

SAME_ORIGIN = (b"origin", b"http://testserver")
# The stack config/websocket.py serves (the real server is exercised by the e2e tests).
websocket_application = websocket_auth_stack(URLRouter(websocket_urlpatterns))


def token_for(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


async def socket(path, *, user=None, how="bearer", origin=SAME_ORIGIN, subprotocols=None, headers=()):
    headers = list(headers)
    if origin:
        headers.append(origin)
    if user is not None and how == "bearer":
        subprotocols = ["bearer", token_for(user)]
    elif user is not None and how == "query":
        path += f"?token={token_for(user)}"
    elif user is not None and how == "session":
        headers.append((b"cookie", f"sessionid={await database_sync_to_async(session_cookie)(user)}".encode()))
    return WebsocketCommunicator(websocket_application, path, headers=headers, subprotocols=subprotocols)


async def connect(communicator, expect_subprotocol=None):
    connected, subprotocol = await communicator.connect(timeout=5)
    assert connected
    assert subprotocol == expect_subprotocol
    return communicator


async def closed_with(communicator) -> int:
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def receive_type(communicator, wanted: str) -> dict:
    """The next message of type `wanted`, skipping others (e.g. position frames while waiting for a status)."""
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == wanted:
            return message


async def relay() -> None:
    """What the relay process does next: publish the outbox (status changes reach the sockets through it)."""
    await database_sync_to_async(outbox_publish)()


def order_path(order) -> str:
    return f"/ws/orders/{order.pk}/"


# --- Authentication: 4401 after accepting ----------------------------------------------------------


async def test_no_credentials_is_accepted_then_closed_4401(assigned_order):
    communicator = await connect(await socket(order_path(assigned_order)))

    assert await closed_with(communicator) == 4401


async def test_a_bad_bearer_token_gets_the_bearer_subprotocol_and_4401(assigned_order):
    communicator = await socket(order_path(assigned_order), subprotocols=["bearer", "not-a-jwt"])

    await connect(communicator, expect_subprotocol="bearer")
    assert await closed_with(communicator) == 4401


async def test_a_bad_query_token_is_4401_even_with_a_valid_session(assigned_order, customer):
    communicator = await socket(order_path(assigned_order) + "?token=nope", user=customer, how="session")

    await connect(communicator)
    assert await closed_with(communicator) == 4401


async def test_an_inactive_users_token_is_4401(assigned_order, customer):
    token = token_for(customer)
    customer.is_active = False
    await database_sync_to_async(customer.save)()
    communicator = await socket(order_path(assigned_order), subprotocols=["bearer", token])

    await connect(communicator, expect_subprotocol="bearer")
    assert await closed_with(communicator) == 4401


@pytest.mark.parametrize("how", ["bearer", "query", "session"])
async def test_the_customer_gets_a_snapshot_by_every_way_in(assigned_order, customer, how):
    communicator = await socket(order_path(assigned_order), user=customer, how=how)

    await connect(communicator, expect_subprotocol="bearer" if how == "bearer" else None)
    snapshot = await communicator.receive_json_from(timeout=5)

    assert snapshot["type"] == "snapshot"
    assert snapshot["order"] == {"id": str(assigned_order.pk), "status": "assigned"}
    await communicator.disconnect()


# --- Cross-site WebSocket hijacking -----------------------------------------------------------------


async def test_a_foreign_origin_is_refused_at_the_handshake(assigned_order, customer):
    communicator = await socket(order_path(assigned_order), user=customer, how="session",
                          origin=(b"origin", b"https://evil.example"))  # fmt: skip

    connected, _ = await communicator.connect(timeout=5)

    assert not connected


@pytest.mark.parametrize(
    "origin", [b"null", b"http://testserver:9999", b"https://testserver.evil.example", b"http://evil.example"]
)
async def test_only_the_configured_origins_may_use_the_cookie_even_with_any_host_allowed(
    assigned_order, customer, origin, settings
):
    settings.ALLOWED_HOSTS = ["*"]
    stack = websocket_auth_stack(URLRouter(websocket_urlpatterns))
    cookie = await database_sync_to_async(session_cookie)(customer)
    headers = [(b"origin", origin), (b"cookie", f"sessionid={cookie}".encode())]

    communicator = WebsocketCommunicator(stack, order_path(assigned_order), headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()  # ends the refused application, as the server does

    assert not connected


async def test_the_same_origin_with_its_port_is_accepted(assigned_order, customer, settings):
    settings.WEBSOCKET_ALLOWED_ORIGINS = ["https://courier.example", "http://localhost:8000"]
    stack = websocket_auth_stack(URLRouter(websocket_urlpatterns))
    cookie = await database_sync_to_async(session_cookie)(customer)

    async def connected_from(origin: bytes) -> bool:
        headers = [(b"origin", origin), (b"cookie", f"sessionid={cookie}".encode())]
        communicator = WebsocketCommunicator(stack, order_path(assigned_order), headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    assert await connected_from(b"https://courier.example:443")
    assert await connected_from(b"http://localhost:8000")
    assert not await connected_from(b"http://localhost:9999")
    assert not await connected_from(b"http://courier.example")


async def test_a_session_cookie_without_an_origin_is_not_honoured(assigned_order, customer):
    communicator = await socket(order_path(assigned_order), user=customer, how="session", origin=None)

    await connect(communicator)
    assert await closed_with(communicator) == 4401


async def test_a_token_needs_no_origin(assigned_order, customer):
    communicator = await socket(order_path(assigned_order), user=customer, origin=None)

    await connect(communicator, expect_subprotocol="bearer")
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    await communicator.disconnect()


# --- Authorization: customer, driver, staff; everyone else 4404 -----------------------------------------


async def test_the_orders_driver_and_staff_may_watch(assigned_order, driver, staff):
    for user in (await database_sync_to_async(lambda: driver.user)(), staff):
        communicator = await connect(await socket(order_path(assigned_order), user=user), "bearer")
        assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
        await communicator.disconnect()


async def test_a_stranger_gets_4404(assigned_order):
    stranger = await database_sync_to_async(UserFactory)()
    communicator = await connect(await socket(order_path(assigned_order), user=stranger), "bearer")

    assert await closed_with(communicator) == 4404


async def test_another_driver_gets_4404(assigned_order):
    other = await database_sync_to_async(make_driver)(name="Other Driver")
    other_user = await database_sync_to_async(lambda: other.user)()
    communicator = await connect(await socket(order_path(assigned_order), user=other_user), "bearer")

    assert await closed_with(communicator) == 4404


@pytest.mark.parametrize("order_id", ["6f1c2a7e-0000-4000-8000-000000000000", "not-a-uuid", "1"])
async def test_a_missing_or_malformed_order_gets_4404(customer, order_id):
    communicator = await connect(await socket(f"/ws/orders/{order_id}/", user=customer), "bearer")

    assert await closed_with(communicator) == 4404


# --- Snapshot -----------------------------------------------------------------------------------------


async def test_the_snapshot_has_the_driver_its_live_position_and_an_eta(assigned_order, customer, driver):
    user = await database_sync_to_async(lambda: driver.user)()
    await database_sync_to_async(post_points)(user, (52.5230, 13.4150))
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")

    snapshot = await communicator.receive_json_from(timeout=5)

    assert snapshot["driver"] == {"id": str(driver.pk), "name": "Dora Driver"}
    assert snapshot["position"]["lat"] == 52.5230 and snapshot["position"]["lng"] == 13.4150
    assert set(snapshot["position"]) == {"lat", "lng", "recorded_at", "heading", "speed"}
    assert snapshot["position"]["recorded_at"].endswith("Z")
    assert snapshot["eta_seconds"] > 0
    await communicator.disconnect()


async def test_the_snapshot_of_an_order_without_a_driver_has_none(customer, product):
    order = await database_sync_to_async(place_order)(customer, product)
    communicator = await connect(await socket(order_path(order), user=customer), "bearer")

    snapshot = await communicator.receive_json_from(timeout=5)

    assert snapshot == {"type": "snapshot", "order": {"id": str(order.pk), "status": "paid"}, "driver": None,
                        "position": None, "eta_seconds": None}  # fmt: skip
    await communicator.disconnect()


# --- Messages from the server ----------------------------------------------------------------------------


async def test_a_drivers_new_point_arrives_as_a_position(assigned_order, customer, driver):
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    await communicator.receive_json_from(timeout=5)
    user = await database_sync_to_async(lambda: driver.user)()

    await database_sync_to_async(post_points)(user, (52.5240, 13.4160))
    position = await communicator.receive_json_from(timeout=5)

    assert position["type"] == "position"
    assert position["order_id"] == str(assigned_order.pk) and position["driver_id"] == str(driver.pk)
    assert (position["lat"], position["lng"], position["heading"], position["speed"]) == (52.524, 13.416, 90.0, 6.0)
    assert set(position) == {"type", "order_id", "driver_id", "lat", "lng", "recorded_at", "heading", "speed"}
    await communicator.disconnect()


async def test_pickup_and_delivery_arrive_as_status_then_the_socket_closes_1000(assigned_order, customer, driver):
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    await communicator.receive_json_from(timeout=5)
    assignment = await database_sync_to_async(active_assignment)(assigned_order)

    await database_sync_to_async(assignments.assignment_accept)(assignment_id=assignment.pk, driver_id=driver.pk)
    await database_sync_to_async(assignments.assignment_pick_up)(assignment_id=assignment.pk, driver_id=driver.pk)
    await relay()
    picked_up = await receive_type(communicator, "status")
    await database_sync_to_async(assignments.assignment_deliver)(assignment_id=assignment.pk, driver_id=driver.pk)
    await relay()
    delivered = await receive_type(communicator, "status")

    assert picked_up["status"] == "picked_up" and picked_up["cancel_reason"] is None
    assert picked_up["order_id"] == str(assigned_order.pk) and picked_up["at"]
    assert delivered["status"] == "delivered"
    assert set(delivered) == {"type", "order_id", "status", "cancel_reason", "at"}
    assert await closed_with(communicator) == 1000


async def test_a_cancellation_arrives_with_its_reason_then_close_1000(assigned_order, customer):
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    await communicator.receive_json_from(timeout=5)

    await database_sync_to_async(orders.order_cancel_and_settle)(order_id=assigned_order.pk, reason="customer")
    await relay()
    status = await receive_type(communicator, "status")

    assert (status["status"], status["cancel_reason"]) == ("cancelled", "customer")
    assert await closed_with(communicator) == 1000


async def test_watching_a_finished_order_gives_snapshot_and_status_then_close_1000(assigned_order, customer):
    await database_sync_to_async(orders.order_cancel_and_settle)(order_id=assigned_order.pk, reason="staff")
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")

    snapshot = await communicator.receive_json_from(timeout=5)
    status = await communicator.receive_json_from(timeout=5)

    assert snapshot["order"]["status"] == "cancelled"
    assert (status["type"], status["status"], status["cancel_reason"]) == ("status", "cancelled", "staff")
    assert await closed_with(communicator) == 1000


async def test_a_finished_orders_snapshot_does_not_follow_the_rider_to_its_next_job(assigned_order, customer, driver):
    user = await database_sync_to_async(lambda: driver.user)()
    await database_sync_to_async(orders.order_cancel_and_settle)(order_id=assigned_order.pk, reason="customer")
    await database_sync_to_async(post_points)(user, (52.5400, 13.4500))

    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    snapshot = await communicator.receive_json_from(timeout=5)

    assert snapshot["order"]["status"] == "cancelled"
    assert snapshot["position"] is None and snapshot["eta_seconds"] is None
    assert await receive_type(communicator, "status")
    assert await closed_with(communicator) == 1000


async def test_after_delivery_the_watcher_gets_no_more_of_the_riders_positions(assigned_order, customer, driver):
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    await communicator.receive_json_from(timeout=5)
    user = await database_sync_to_async(lambda: driver.user)()
    assignment = await database_sync_to_async(active_assignment)(assigned_order)
    for move in (assignments.assignment_accept, assignments.assignment_pick_up, assignments.assignment_deliver):
        await database_sync_to_async(move)(assignment_id=assignment.pk, driver_id=driver.pk)
    await relay()

    await database_sync_to_async(post_points)(user, (52.5400, 13.4500))
    frames = []
    while (output := await communicator.receive_output(timeout=5))["type"] != "websocket.close":
        frames.append(json.loads(output["text"]))

    assert [frame["status"] for frame in frames if frame["type"] == "status"][-1] == "delivered"
    assert not [frame for frame in frames if frame["type"] == "position"]
    assert output["code"] == 1000
    assert await communicator.receive_nothing(timeout=0.5)


async def test_the_staff_map_gets_one_driver_id_for_a_driver_in_every_message(assigned_order, driver, staff):
    communicator = await connect(await socket("/ws/fleet/", user=staff, how="session"))
    snapshot = await communicator.receive_json_from(timeout=5)
    user = await database_sync_to_async(lambda: driver.user)()
    assignment = await database_sync_to_async(active_assignment)(assigned_order)

    await database_sync_to_async(post_points)(user, (52.5240, 13.4160))
    moved = await receive_type(communicator, "driver")
    await database_sync_to_async(assignments.assignment_accept)(assignment_id=assignment.pk, driver_id=driver.pk)
    await database_sync_to_async(assignments.assignment_pick_up)(assignment_id=assignment.pk, driver_id=driver.pk)
    await relay()
    picked_up = await receive_type(communicator, "order")

    assert snapshot["drivers"][0]["driver_id"] == moved["driver_id"] == picked_up["driver_id"] == str(driver.pk)
    assert picked_up["order_id"] == str(assigned_order.pk) and picked_up["status"] == "picked_up"
    await communicator.disconnect()


async def test_the_staff_map_learns_which_rider_a_cancelled_order_freed(assigned_order, driver, staff):
    # The cancellation comes from the customer, not from delivery: the message's rider is read from delivery's
    # record, so the map can clear that rider's order.
    communicator = await connect(await socket("/ws/fleet/", user=staff, how="session"))
    await communicator.receive_json_from(timeout=5)

    await database_sync_to_async(orders.order_cancel_and_settle)(order_id=assigned_order.pk, reason="customer")
    await relay()
    cancelled = await receive_type(communicator, "order")

    assert (cancelled["order_id"], cancelled["status"]) == (str(assigned_order.pk), "cancelled")
    assert cancelled["driver_id"] == str(driver.pk)
    await communicator.disconnect()


# --- Messages from the client -------------------------------------------------------------------------


async def test_ping_is_answered_with_pong(assigned_order, customer):
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    await communicator.receive_json_from(timeout=5)

    await communicator.send_json_to({"type": "ping"})

    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame",
    [{"text_data": "{not json"}, {"text_data": '{"type": "subscribe"}'}, {"text_data": "[1, 2]"},
     {"text_data": '"ping"'}, {"text_data": "{}"}, {"bytes_data": b"\x00\x01"},
     {"text_data": "[" * 2000 + "]" * 2000}, {"text_data": '{"type": "ping", "pad": "' + "x" * 5000 + '"}'},
     {"text_data": '{"type": "ping", "pad": "' + "é" * 2100 + '"}'}],  # 2,100 characters, over 4 KB as UTF-8
)  # fmt: skip
async def test_bad_messages_get_an_error_and_the_socket_stays_open(assigned_order, customer, frame):
    communicator = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    await communicator.receive_json_from(timeout=5)

    await communicator.send_to(**frame)
    error = await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to({"type": "ping"})

    assert error == {"type": "error", "code": "bad_message"}
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


async def test_a_user_may_hold_only_so_many_sockets(assigned_order, customer, settings):
    settings.WEBSOCKET_MAX_SOCKETS_PER_USER = 2
    first = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    second = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    await first.receive_json_from(timeout=5)
    await second.receive_json_from(timeout=5)

    third = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    assert await closed_with(third) == 4429

    await first.disconnect()
    fourth = await connect(await socket(order_path(assigned_order), user=customer), "bearer")
    assert (await fourth.receive_json_from(timeout=5))["type"] == "snapshot"
    await second.disconnect()
    await fourth.disconnect()


async def test_an_unknown_websocket_path_is_refused_as_not_found(customer):
    communicator = await connect(await socket("/ws/nope/", user=customer), "bearer")

    assert await closed_with(communicator) == 4404


# --- The staff fleet socket ---------------------------------------------------------------------------


async def test_fleet_is_staff_only(customer):
    anonymous = await connect(await socket("/ws/fleet/"))
    assert await closed_with(anonymous) == 4401

    not_staff = await connect(await socket("/ws/fleet/", user=customer), "bearer")
    assert await closed_with(not_staff) == 4403


async def test_fleet_snapshot_then_drivers_and_orders_live(assigned_order, driver, staff, customer, product):
    communicator = await connect(await socket("/ws/fleet/", user=staff, how="session"))

    snapshot = await communicator.receive_json_from(timeout=5)
    newcomer = await database_sync_to_async(make_driver)(name="New Driver", position=(52.50, 13.40))
    appeared = await receive_type(communicator, "driver")

    assert snapshot["type"] == "snapshot"
    assert [d["driver_id"] for d in snapshot["drivers"]] == [str(driver.pk)]
    assert snapshot["drivers"][0]["order_id"] == str(assigned_order.pk)
    assert snapshot["drivers"][0]["position"]["lat"] == pytest.approx(52.5225)
    assert [o["order_id"] for o in snapshot["orders"]] == [str(assigned_order.pk)]
    assert snapshot["orders"][0]["store"]["lat"] == pytest.approx(52.5219)
    assert (appeared["driver_id"], appeared["name"], appeared["lat"]) == (str(newcomer.pk), "New Driver", 50.0 + 2.5)

    order = await database_sync_to_async(place_order)(customer, product)
    await relay()
    news = await receive_type(communicator, "order")
    assert news["order_id"] == str(order.pk) and news["status"] in {"reserved", "paid"}
    assert news["destination"]["address"] == "Torstrasse 1, Berlin"
    await communicator.disconnect()
