from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self):
        from common import invariants
        from delivery import events as delivery_events
        from delivery import invariants as checks
        from delivery import selectors, tasks
        from orders import drivers, events

        drivers.install(drivers_of=selectors.order_drivers, orders_driven_by=selectors.orders_driven_by)
        events.subscribe(events.ORDER_PAID, tasks.dispatch_on_paid)
        events.subscribe(events.ORDER_STATUS_CHANGED, tasks.release_on_cancel)
        delivery_events.dispatch_requested.connect(tasks.dispatch_on_request, dispatch_uid="dispatch_on_request")
        delivery_events.driver_became_candidate.connect(
            tasks.dispatch_near_on_candidate, dispatch_uid="dispatch_near_on_candidate"
        )
        invariants.register("delivery_no_double_booking", checks.no_double_booking)
        invariants.register("delivery_busy_iff_active_assignment", checks.busy_iff_active_assignment)
        invariants.register("delivery_assignments_match_orders", checks.assignments_match_orders)
        invariants.register("delivery_paid_orders_are_dispatched", checks.paid_orders_are_dispatched)
