from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"

    def ready(self):
        from orders import events
        from tracking.services import on_order_status_changed

        events.subscribe(events.ORDER_STATUS_CHANGED, on_order_status_changed)
