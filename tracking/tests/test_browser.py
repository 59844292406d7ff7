"""In real Chromium (the `chromium` fixture: the system's, else one installed for the tests), against the running `web`.
Map tiles are blocked, as on a machine without internet: the page must work without them."""

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from common.processes import Process, procfile, wait_for_http
from tracking.tests.conftest import active_assignment, api_as, assign, make_driver, place_order, post_points

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.route("https://tile.openstreetmap.org/**", lambda route: route.abort("internetdisconnected"))
    return context.new_page()


def post_point(api: httpx.Client, lat: float, lng: float) -> None:
    point = {"lat": lat, "lng": lng, "recorded_at": datetime.now(UTC).isoformat(), "heading": 45.0, "speed": 6.0}
    answer = api.post("/api/v1/drivers/me/locations", json={"points": [point]})
    assert answer.status_code == 202, answer.text


@pytest.mark.browser
@pytest.mark.e2e
def test_the_customer_watches_the_rider_move_and_the_status_change(start_process, page, customer, product):
    # given an assigned order and the running web process
    web = start_process("web", WEB_CONCURRENCY="1")
    start_process("relay")  # status changes reach the page through the outbox relay
    base = f"http://127.0.0.1:{web.port}"
    driver = make_driver()
    order = assign(place_order(customer, product))
    assignment = active_assignment(order)
    api = api_as(base, driver.user)

    # when the customer opens the tracking page: sent to sign in, then back to the page
    page.goto(f"{base}/track/{order.pk}/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/track/{order.pk}/")
    page.fill("#id_username", customer.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/track/{order.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # then, without tiles, the store, the destination and the route are drawn, and the rider where it was
    expect(page.locator("path.store-marker")).to_have_count(1)
    expect(page.locator("path.destination-marker")).to_have_count(1)
    expect(page.locator("path.route-line")).to_have_count(1)
    expect(page.locator("#status")).to_have_attribute("data-status", "assigned")
    rider = page.locator("path.rider-marker")
    expect(rider).to_have_count(1)
    before = rider.get_attribute("d")

    # when the driver posts points, the rider marker moves
    post_point(api, 52.5262, 13.4080)
    expect(page.locator("#position")).to_have_attribute("data-lat", "52.5262")
    post_point(api, 52.5275, 13.4050)
    expect(page.locator("#position")).to_have_attribute("data-lat", "52.5275")
    assert rider.get_attribute("d") != before
    expect(page.locator("#eta")).to_contain_text("min")

    # when the driver picks up, then delivers, the status follows on the page
    for move in ("accept", "pickup"):
        assert api.post(f"/api/v1/assignments/{assignment.pk}/{move}").status_code == 200
    expect(page.locator("#status")).to_have_attribute("data-status", "picked_up")
    expect(page.locator("#timeline li[data-step=picked_up]")).to_have_class("done current")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tracking-page.png"), full_page=True)
    assert api.post(f"/api/v1/assignments/{assignment.pk}/deliver").status_code == 200
    expect(page.locator("#status")).to_have_attribute("data-status", "delivered")
    expect(page.locator("#connection")).to_have_attribute("data-state", "done")
    page.screenshot(path=str(ARTIFACTS / "tracking-page-delivered.png"), full_page=True)
    assert (ARTIFACTS / "tracking-page.png").stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.e2e
def test_the_page_reconnects_and_resyncs_after_the_server_restarts(start_process, stack_env, page, customer, product):
    # given the customer watching an assigned order
    web = start_process("web", WEB_CONCURRENCY="1")
    start_process("relay")  # status changes reach the page through the outbox relay
    driver = make_driver()
    order = assign(place_order(customer, product))
    page.goto(f"http://127.0.0.1:{web.port}/accounts/login/?next=/track/{order.pk}/")
    page.fill("#id_username", customer.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # when the web process dies, the rider moves meanwhile, and a new one starts on the same port
    web.kill()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    post_points(driver.user, (52.5290, 13.4020))
    env = {**stack_env, "WEB_CONCURRENCY": "1", "PORT": str(web.port)}
    again = Process("web-again", procfile()["web"].strip(), env, Path(stack_env["LOG_DIR"]))
    try:
        wait_for_http(f"http://127.0.0.1:{web.port}/healthz")

        # then the page is live again and shows the position from the new snapshot
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=45_000)
        expect(page.locator("#position")).to_have_attribute("data-lat", "52.529")
    finally:
        again.stop()


@pytest.mark.browser
@pytest.mark.e2e
def test_the_staff_live_map_shows_a_driver_appearing(start_process, page, staff):
    # given staff signed in to the admin, on the live map
    web = start_process("web", WEB_CONCURRENCY="1")
    start_process("relay")  # status changes reach the page through the outbox relay
    base = f"http://127.0.0.1:{web.port}"
    page.goto(f"{base}/admin/live-map/")
    page.fill("#id_username", staff.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{base}/admin/live-map/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#drivers tbody tr")).to_have_count(0)

    # when a driver goes on duty and sends its first point
    driver = make_driver(name="Fresh Driver")
    post_point(api_as(base, driver.user), 52.5200, 13.4050)

    # then it appears on the map and in the table
    row = page.locator(f"#drivers tbody tr[data-driver-id='{driver.pk}']")
    expect(row).to_contain_text("Fresh Driver")
    expect(row).to_have_attribute("data-status", "available")
    expect(page.locator(f"path.driver-{driver.pk}")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "staff-live-map.png"), full_page=True)
