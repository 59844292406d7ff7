from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TrackingConfig(AppConfig):
    name = "tracking"

    def ready(self):
        from orders import events
        from tracking.services import on_order_status_changed

        events.subscribe(events.ORDER_STATUS_CHANGED, on_order_status_changed)


class CourierAdminConfig(admin_apps.AdminConfig):
    """The Django admin with Courier's own site: branding, the operations dashboard as its home, the live map."""

    default = False  # named in INSTALLED_APPS; TrackingConfig stays this module's default
    default_site = "tracking.admin.CourierAdminSite"
