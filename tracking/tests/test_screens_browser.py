"""Every screen in real Chromium against the running `web` process, at a 1400 px desktop and a phone viewport.
Screenshots land in artifacts/ (looked at by a person before a change to these screens is called done)."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import UserFactory
from common.processes import wait_until
from delivery.services import assignments, dispatch
from inventory.models import Store
from orders.models import Order, OutboxEvent, TimelineEntry
from orders.tests.helpers import place_order, run_saga
from tracking.tests.conftest import active_assignment, api_as, make_driver, session_cookie
from tracking.tests.conftest import place_order as place_tracked_order

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def web(start_process):
    process = start_process("web", WEB_CONCURRENCY="1")
    start_process("relay")  # status changes reach the pages through the outbox relay
    return f"http://127.0.0.1:{process.port}"


def open_page(browser, base: str, *, user=None, viewport=DESKTOP):
    """A page in a fresh context, signed in as `user` (a session cookie), with map tiles blocked (no internet)."""
    context = browser.new_context(viewport=viewport)
    context.route("https://tile.openstreetmap.org/**", lambda route: route.abort("internetdisconnected"))
    if user is not None:
        context.add_cookies([{"name": "sessionid", "value": session_cookie(user), "url": base}])
    return context.new_page()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_landing_page_on_desktop_and_phone(browser, web):
    for viewport, name in ((DESKTOP, "landing-desktop"), (PHONE, "landing-phone")):
        page = open_page(browser, web, viewport=viewport)
        page.goto(f"{web}/")
        expect(page.locator("h1")).to_have_text("Courier")
        expect(page.locator("#door-api")).to_have_attribute("href", "/api/docs/")
        expect(page.locator("#door-admin")).to_have_attribute("href", "/admin/")
        assert no_horizontal_scroll(page)
        shot(page, name)
        page.click("#door-customer")
        expect(page).to_have_url(f"{web}/accounts/login/")


def test_the_dashboard_shows_the_figures_and_leads_to_stuck_orders(browser, web, staff):
    # given some traffic: a stuck reserved order, one waiting for a driver, a declined one, two riders
    stuck = place_order()
    Order.objects.filter(pk=stuck.pk).update(updated_at=stuck.updated_at - timedelta(minutes=5))
    waiting = place_order()
    run_saga(waiting)
    declined = place_order(token="tok_declined")
    run_saga(declined)
    make_driver(name="Avery Available")
    busy_order = place_order()
    run_saga(busy_order)
    make_driver(name="Blake Busy")

    dispatch.order_dispatch(order_id=busy_order.pk)
    TimelineEntry.objects.filter(order=busy_order, step="assign_driver").update(
        at=TimelineEntry.objects.get(order=busy_order, step="commit_stock").at + timedelta(seconds=3)
    )
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])

    # when staff open the admin
    page = open_page(browser, web, user=staff)
    page.goto(f"{web}/admin/")

    # then the dashboard is the home, branded, with every figure and the chart
    expect(page.locator("#site-name")).to_contain_text("Courier operations")
    expect(page.locator(".tile[data-status=awaiting_driver] .tile-count")).to_have_text("1")
    expect(page.locator("#orders-last-hour")).to_have_text("4")
    expect(page.locator("#payment-failures-last-hour")).to_have_text("1")
    expect(page.locator("#dispatch-p50")).to_contain_text("s")
    expect(page.locator("#riders-busy")).to_have_text("1")
    expect(page.locator("svg.orders-chart rect.bar-orders")).to_have_count(60)
    assert no_horizontal_scroll(page)
    shot(page, "admin-dashboard-desktop")

    # and the live map and the landing page are one click away
    expect(page.locator("#live-map-link")).to_have_attribute("href", "/admin/live-map/")
    expect(page.locator("#user-tools a", has_text="View site")).to_have_attribute("href", "/")

    # when they follow the stuck link, the stuck order is listed, ready for "Re-drive stuck saga"
    page.click("#stuck-link")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    shot(page, "admin-stuck-orders")

    phone = open_page(browser, web, user=staff, viewport=PHONE)
    phone.goto(f"{web}/admin/")
    expect(phone.locator("#dashboard")).to_be_visible()
    shot(phone, "admin-dashboard-phone")


def test_the_admin_order_screens_fit_and_read_well(browser, web, staff, customer):
    # given orders in every state a person meets: waiting, assigned to a named driver, declined
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    for token in ("tok_ok", "tok_declined"):
        run_saga(place_order(token=token, customer=customer))
    # names as long as real ones (the simulator's "Sim Market Prenzlauer Berg", "sim-customer-9@courier.example")
    long_customer = UserFactory(email="sim-customer-with-a-long-name@courier.example")
    long_store = place_order(customer=long_customer)
    Store.objects.filter(pk=long_store.store_id).update(name="Sim Market Prenzlauer Berg Nord")
    make_driver(name="Riley Rider")
    make_driver(name="Nia Nearby")
    assigned = place_order(customer=customer)
    run_saga(assigned)

    dispatch.order_dispatch(order_id=assigned.pk)

    # the order list at 1400 px: payment, driver and date visible without scrolling sideways
    page = open_page(browser, web, user=staff)
    page.goto(f"{web}/admin/orders/order/")
    results = page.locator("#changelist .results")
    visible_right = results.evaluate("el => el.getBoundingClientRect().right")
    for column in ("Payment", "Driver", "Placed"):
        header = page.locator("#result_list thead th", has_text=column).first
        expect(header).to_be_visible()
        box = header.bounding_box()
        assert box["x"] + box["width"] <= min(visible_right, DESKTOP["width"]), column
    assert results.evaluate("el => el.scrollWidth <= el.clientWidth")  # nothing hidden to the right
    assert no_horizontal_scroll(page)
    first_id = page.locator("#result_list a.short-id").first
    assert len(first_id.inner_text()) == 8 and len(first_id.get_attribute("title")) == 36
    shot(page, "admin-order-list")

    # the order page: the driver's name, money from minor units, times to the second, tracking one click away
    page.goto(f"{web}/admin/orders/order/{assigned.pk}/change/")
    expect(page.locator("#order-tracking-link")).to_have_attribute("href", f"/track/{assigned.pk}/")
    expect(page.locator("body")).not_to_contain_text("Driver user")
    expect(page.locator(".inline-group").first).to_contain_text("Succeeded 25.00 EUR")
    shot(page, "admin-order-page")

    # reassign: a choice of nearby available drivers, not a typed id
    page.goto(f"{web}/admin/delivery/assignment/")
    page.locator("#result_list input.action-select").first.check()
    page.select_option("select[name=action]", "reassign")
    page.click("button[name=index]")
    expect(page.locator("#reassign-form input[type=radio]")).to_have_count(1)
    shot(page, "admin-reassign")
    page.click("#reassign-form input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("reassigned to")

    page.goto(f"{web}/admin/delivery/driver/")
    expect(page.locator("#result_list")).to_contain_text("just now")
    shot(page, "admin-driver-list")


def test_the_live_map_lists_every_driver_at_once_fits_them_and_speaks_plainly(browser, web, staff, customer):
    # given five working drivers spread over the city, and an order picked up by one of them

    spots = [(52.5225, 13.4140), (52.5400, 13.3500), (52.4900, 13.4600), (52.5600, 13.4300), (52.5050, 13.3300)]
    drivers = [make_driver(name=f"Rider {name}", position=spot) for name, spot in zip("ABCDE", spots, strict=True)]
    order = place_order(customer=customer)
    run_saga(order)
    dispatch.order_dispatch(order_id=order.pk)
    assignment = active_assignment(Order.objects.get(pk=order.pk))
    assignments.assignment_accept(assignment_id=assignment.pk, driver_id=assignment.driver_id)
    assignments.assignment_pick_up(assignment_id=assignment.pk, driver_id=assignment.driver_id)
    rider = next(driver for driver in drivers if driver.pk == assignment.driver_id)

    # when staff open the live map
    page = open_page(browser, web, user=staff)
    page.goto(f"{web}/admin/live-map/")

    # then every driver is listed from the first frame, with names and human statuses
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#drivers tbody tr")).to_have_count(5, timeout=2000)
    expect(page.locator("#driver-count")).to_have_text("5")
    order_row = page.locator(f"#orders tbody tr[data-order-id='{order.pk}']")
    expect(order_row).to_contain_text("Picked up")
    expect(order_row).to_contain_text(rider.user.name)
    expect(page.locator(f"#drivers tbody tr[data-driver-id='{rider.pk}']")).to_contain_text("Busy")
    expect(page.locator("#legend")).to_contain_text("available driver")
    expect(page.locator("#legend")).to_contain_text("destination")
    assert "picked_up" not in page.locator(".tables").inner_text()

    # compact rows, and the view fitted to every marker
    heights = page.locator("#drivers tbody tr").evaluate_all("rows => rows.map(r => r.getBoundingClientRect().height)")
    assert max(heights) < 40, heights
    inside = page.evaluate(
        """() => { const f = window.courierFleet, b = f.map.getBounds();
                   return [...f.drivers.values()].every(({marker}) => b.contains(marker.getLatLng())); }"""
    )
    assert inside
    assert no_horizontal_scroll(page)
    shot(page, "live-map-desktop")

    phone = open_page(browser, web, user=staff, viewport=PHONE)
    phone.goto(f"{web}/admin/live-map/")
    expect(phone.locator("#drivers tbody tr")).to_have_count(5)
    assert no_horizontal_scroll(phone)
    shot(phone, "live-map-phone")


def markers_in_view(page, *selectors: str) -> bool:
    """Every marker matched is drawn inside the map's box (not cut off by its edges)."""
    return page.evaluate(
        """(selectors) => { const box = document.getElementById("map").getBoundingClientRect();
             return selectors.every((s) => { const r = document.querySelector(s).getBoundingClientRect();
               return r.width > 0 && r.left >= box.left && r.right <= box.right
                   && r.top >= box.top && r.bottom <= box.bottom; }); }""",
        list(selectors),
    )


def test_the_customer_tracking_page_and_order_list_on_a_phone(browser, web, customer):
    # given an order on its way with a named rider, far enough from the store to need the whole map

    make_driver(name="Robin Rider")
    product = place_order(customer=customer).lines.first().product  # a store with stock, and an older order
    order = place_tracked_order(customer, product, lat=52.5450, lng=13.3650)
    dispatch.order_dispatch(order_id=order.pk)
    assignment = active_assignment(Order.objects.get(pk=order.pk))

    # when the customer opens it on a phone
    page = open_page(browser, web, user=customer, viewport=PHONE)
    page.goto(f"{web}/track/{order.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # then it says which order, what is in it, what it costs and, in words, what is happening
    expect(page.locator("#order-number")).to_have_text(str(order.pk)[:8].upper())
    expect(page.locator("#items")).to_contain_text(f"1 × {product.name}")
    expect(page.locator("#total")).to_have_text("12.50 EUR")
    expect(page.locator("#status-line")).to_have_text("Robin Rider is on the way to the store to pick up your order.")
    assert "52.52" not in page.locator("aside").inner_text()  # no raw coordinates
    assert markers_in_view(page, "path.store-marker", "path.destination-marker")
    assert no_horizontal_scroll(page)
    shot(page, "tracking-phone")

    # when the rider picks it up (through the driver app's API: news reaches the page from the web process)
    rider_api = api_as(web, assignment.driver.user)
    for move in ("accept", "pickup"):
        assert rider_api.post(f"/api/v1/assignments/{assignment.pk}/{move}").status_code == 200
    expect(page.locator("#status-line")).to_have_text("Robin Rider has your order and is on the way to you.")
    expect(page.locator("#status")).to_have_text("Picked up")

    desktop = open_page(browser, web, user=customer)
    desktop.goto(f"{web}/track/{order.pk}/")
    expect(desktop.locator("#connection")).to_have_attribute("data-state", "live")
    assert markers_in_view(desktop, "path.store-marker", "path.destination-marker")
    shot(desktop, "tracking-desktop")

    # and the order list tells the two orders apart
    page.goto(f"{web}/track/")
    rows = page.locator("#order-list li")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(f"Order {str(order.pk)[:8].upper()}")
    expect(rows.first).to_contain_text("12.50 EUR")
    expect(rows.nth(1)).to_contain_text("25.00 EUR")
    assert no_horizontal_scroll(page)
    shot(page, "orders-phone")


def test_a_cancellation_reaches_the_open_page_with_the_refund(browser, web, customer):
    # given the customer watching an order that waits for a rider
    order = place_order(customer=customer)
    run_saga(order)
    page = open_page(browser, web, user=customer, viewport=PHONE)
    page.goto(f"{web}/track/{order.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#status-line")).to_have_text("Paid. We are finding a rider near the store.")

    # when the customer cancels it in the app (refunded at once)
    assert api_as(web, customer).post(f"/api/v1/orders/{order.pk}/cancel").status_code == 200

    # then the page says so, with the amount given back, and nothing about a finished delivery
    expect(page.locator("#status")).to_have_text("Cancelled")
    expect(page.locator("#status-line")).to_have_text("Cancelled: you cancelled it.")
    # (the refund may land a moment after the cancellation; the page looks again until it has)
    expect(page.locator("#money-line")).to_have_text("25.00 EUR refunded to your payment method.", timeout=15_000)
    expect(page.locator("#rider-line")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "done")
    expect(page.locator("#connection")).to_have_text("order cancelled")
    shot(page, "tracking-cancelled-phone")


def fleet_publish(message: dict) -> None:
    """Put a message on the staff map's channel-layer group, as a producer in another process would.
    From a thread of its own: this one runs Playwright's event loop."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from delivery.live import FLEET_GROUP

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(async_to_sync(get_channel_layer().group_send), FLEET_GROUP, message).result(timeout=20)


def test_the_live_map_matches_a_driver_id_sent_as_a_number(browser, web, staff, customer):
    # given the map open on an order assigned to a rider
    make_driver(name="Numbered Nora")
    order = place_order(customer=customer)
    run_saga(order)
    dispatch.order_dispatch(order_id=order.pk)
    # The relay sends the order's own status news before the map opens: sent later (a busy machine), its
    # `assigned` would come after the `delivered` below and put the order back on the map.
    assert wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), timeout=30)
    driver_id = Order.objects.get(pk=order.pk).driver.id
    page = open_page(browser, web, user=staff)
    page.goto(f"{web}/admin/live-map/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    driver_row = page.locator(f"#drivers tbody tr[data-driver-id='{driver_id}']")
    expect(driver_row).to_contain_text(str(order.pk)[:8])

    # when an order message names the driver by a number, not a string (as fleet.order once did)
    fleet_publish({"type": "fleet.order", "order_id": str(order.pk), "status": "delivered", "driver_id": int(driver_id),
                   "at": "2026-11-22T00:00:00Z"})  # fmt: skip

    # then it is the same driver: its row loses the finished order instead of a second driver appearing
    expect(page.locator(f"#orders tbody tr[data-order-id='{order.pk}']")).to_have_count(0)
    expect(driver_row.locator("td").nth(2)).to_have_text("–")
    expect(page.locator("#drivers tbody tr")).to_have_count(1)
