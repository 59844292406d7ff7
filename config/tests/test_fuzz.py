"""Schema-driven fuzzing: schemathesis against the real `web` process, as a customer, a driver and staff.

For every operation of the OpenAPI document, generated requests (valid ones, and ones that break the schema on
purpose) must get: no 5xx, only status codes the document lists, the documented content type, and bodies that
match the documented schema. (schemathesis' negative_data_rejection is left out: DRF coerces numbers into string
fields, e.g. `"name": -428`, and that is accepted; see README "Testing".) Bounded: FUZZ_EXAMPLES per operation,
actor and mode, and FUZZ_BUDGET_SECONDS for the whole run (examples are generated until the budget is spent, then
every operation still gets one).
`make fuzz` runs it alone with more examples; FUZZ_SEED=n repeats a run's examples.
"""

import contextlib
import os
import random
import time
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tests.factories import UserFactory
from accounts.tokens import access_token_for
from delivery.models import Assignment
from delivery.services import dispatch
from delivery.tests.helpers import make_driver, paid_order
from inventory.tests.factories import ProductFactory

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
BUDGET_SECONDS = float(os.environ.get("FUZZ_BUDGET_SECONDS", "60"))
SEED = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Run:
    base_url: str
    deadline: float
    session: requests.Session = field(default_factory=requests.Session)
    requests: int = 0
    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (operation, check) -> examples

    def examples(self) -> int:
        return EXAMPLES if time.monotonic() < self.deadline else 1


def a_world():
    """A customer with an order that a driver has accepted, a store with a product, and staff: real ids for
    the path parameters, so generated requests reach real resources, not only 404s."""
    customer, staff = UserFactory(name="Fuzz Customer"), UserFactory(name="Fuzz Staff", is_staff=True)
    driver = make_driver(name="Fuzz Driver")
    order = paid_order(customer=customer)
    dispatch.order_dispatch(order_id=order.pk)
    assignment = Assignment.objects.get(order_id=order.pk, driver=driver)
    product = ProductFactory(store=order.store, on_hand=1000)
    ids = {"order_id": str(order.pk), "assignment_id": str(assignment.pk), "store_id": str(order.store_id),
           "product_id": str(product.pk)}  # fmt: skip
    tokens = {name: f"Bearer {access_token_for(user)}" for name, user in
              [("customer", customer), ("driver", driver.user), ("staff", staff)]}  # fmt: skip
    return ids, tokens


def without_security(document: dict) -> dict:
    """The harness signs each request in as its actor (or not at all); schemathesis must not generate or negate the
    Authorization header itself, or a "broken" header it reports would really be the actor's valid one."""
    document.get("components", {}).pop("securitySchemes", None)
    for item in document["paths"].values():
        for operation in item.values():
            operation.pop("security", None)
    return document


def fuzz(run: Run, operation, *, actor: str, token: str, mode, path_parameters=None) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @seed(SEED)
    @settings(max_examples=run.examples(), deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)  # fmt: skip
    @given(case=strategy)
    def one(case):
        headers = {"Authorization": token} if actor != "anonymous" else {}
        response = case.call(base_url=run.base_url, session=run.session, headers=headers, timeout=15)
        run.requests += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as exc:
            # Recorded, not raised: one run reports every broken operation instead of shrinking the first.
            found = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            for failure in found:
                run.failures.setdefault((operation.label, failure.title), []).append(
                    f"as {actor}, {mode.value} input: {failure.message[:600]}\n    "
                    + case.as_curl_command(headers=headers)
                )

    # Unsatisfiable: nothing of this operation can be made schema-violating (no parameters, no body).
    with contextlib.suppress(Unsatisfiable):
        one()


def test_the_live_api_keeps_its_schema_under_generated_input(start_process):
    web = start_process("web", WEB_CONCURRENCY="1")
    base_url = f"http://127.0.0.1:{web.port}"
    ids, tokens = a_world()
    schema = schemathesis.openapi.from_dict(without_security(httpx.get(f"{base_url}/api/schema/?format=json").json()))
    run = Run(base_url=base_url, deadline=time.monotonic() + BUDGET_SECONDS)
    started = time.monotonic()

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for actor, token in tokens.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz(run, operation, actor=actor, token=token, mode=mode)
            wanted = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
            if wanted:  # the same again on the world's real resources
                fuzz(run, operation, actor=actor, token=token, mode=GenerationMode.POSITIVE, path_parameters=wanted)
        fuzz(run, operation, actor="anonymous", token="", mode=GenerationMode.POSITIVE)

    elapsed = time.monotonic() - started
    print(f"fuzz: {run.requests} requests, {len(operations)} operations, {elapsed:.1f} s, seed {SEED}")
    assert len(operations) >= 25
    report = [f"{label}: {title} ({len(seen)}x), e.g. {seen[0]}" for (label, title), seen in run.failures.items()]
    assert not report, f"FUZZ_SEED={SEED}:\n\n" + "\n\n".join(report)
