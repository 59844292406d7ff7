"""Nobody reaches what is not theirs, and the answer never tells whether it exists (OWASP API1: BOLA, API5: BFLA).

Someone else's order, tracking or assignment answers byte for byte like one that does not exist."""

import uuid

import pytest

from accounts.tests.factories import UserFactory, bearer_client
from delivery.models import Assignment
from delivery.services import dispatch
from delivery.tests.helpers import make_driver, offset, paid_order
from orders.models import Order

pytestmark = pytest.mark.django_db


def same_answer(first, second) -> None:
    assert (first.status_code, first.content) == (second.status_code, second.content)
    assert first.status_code == 404 and first["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "method, template",
    [("get", "/api/v1/orders/{}"), ("get", "/api/v1/orders/{}/tracking"), ("post", "/api/v1/orders/{}/cancel")],
)
def test_someone_elses_order_answers_exactly_like_a_missing_one(method, template):
    order = paid_order()
    stranger = bearer_client(UserFactory())

    theirs = getattr(stranger, method)(template.format(order.pk))
    missing = getattr(stranger, method)(template.format(uuid.uuid4()))

    same_answer(theirs, missing)
    assert Order.objects.get(pk=order.pk).status == "paid"


@pytest.mark.parametrize("move", ["accept", "decline", "pickup", "deliver"])
def test_a_driver_cannot_move_another_drivers_assignment(move):
    driver, other = make_driver(), make_driver(at=offset(2))
    dispatch.order_dispatch(order_id=paid_order().pk)
    assignment = Assignment.objects.get(driver=driver)
    as_other = bearer_client(other.user)

    theirs = as_other.post(f"/api/v1/assignments/{assignment.pk}/{move}")
    missing = as_other.post(f"/api/v1/assignments/{uuid.uuid4()}/{move}")

    same_answer(theirs, missing)
    assignment.refresh_from_db()
    assert (assignment.status, assignment.driver_id) == ("assigned", driver.pk)


def test_another_drivers_order_and_its_tracking_stay_hidden_from_a_driver():
    driver, other = make_driver(), make_driver(at=offset(2))
    order = paid_order()
    dispatch.order_dispatch(order_id=order.pk)
    as_other = bearer_client(other.user)

    same_answer(as_other.get(f"/api/v1/orders/{order.pk}"), as_other.get(f"/api/v1/orders/{uuid.uuid4()}"))
    same_answer(
        as_other.get(f"/api/v1/orders/{order.pk}/tracking"), as_other.get(f"/api/v1/orders/{uuid.uuid4()}/tracking")
    )
    assert bearer_client(driver.user).get(f"/api/v1/orders/{order.pk}").status_code == 200


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/api/v1/drivers", None),
        ("post", "/api/v1/drivers", {"email": "someone@example.com"}),
        ("post", "/api/v1/stores", {"name": "Mine", "address": "Here", "lat": 1, "lng": 1}),
    ],
)
def test_customers_and_drivers_cannot_use_staff_functions(method, path, body):
    for user in (UserFactory(), make_driver(at=None).user):
        response = getattr(bearer_client(user), method)(path, body, format="json")

        assert response.status_code == 403, response.content
        assert response.json()["code"] == "permission_denied"
