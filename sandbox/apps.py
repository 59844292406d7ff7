from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The sandbox payment gateway and its books. Installed only while PAYMENT_GATEWAY names it (see settings):
    a deployment on a real gateway has neither this app nor its table."""

    name = "sandbox"
    verbose_name = "Sandbox payment gateway"
