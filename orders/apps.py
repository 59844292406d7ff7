from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self):
        from common import invariants
        from orders import events, metrics, tasks
        from orders.invariants import money_and_stock_follow_status

        events.subscribe(events.ORDER_RESERVED, tasks.start_saga)
        events.subscribe(events.ORDER_STATUS_CHANGED, tasks.start_saga)
        invariants.register("money_and_stock_follow_status", money_and_stock_follow_status)
        metrics.register()
