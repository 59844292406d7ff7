"""Staff screens for orders: read-only records, changed only through actions that call services.

Nothing about an order is editable in a form: a status or amount typed by hand would bypass the saga,
the stock moves and the outbox. `Model.save()` from a form opened a minute ago would also write back a
stale status over whatever the saga did since.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from kombu.exceptions import OperationalError as BrokerError

from accounts.models import User
from common.admin import ReadOnlyAdminMixin, short_id, time_with_seconds
from common.errors import DomainError
from common.money import money
from orders import selectors, services
from orders.models import Order, OrderLine, OutboxEvent, Payment, TimelineEntry
from orders.tasks import order_saga_task

# The saga has work to do only for these (charge a reserved order, settle a cancelled one's payment).
REDRIVABLE = {Order.Status.RESERVED, Order.Status.CANCELLED}


class ReadOnlyInline(ReadOnlyAdminMixin):
    """Inlines that show, never edit; visible to whoever may view the order."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("orders.view_order")


class OrderLineInline(ReadOnlyInline, admin.TabularInline):
    model = OrderLine
    fields = ["product", "name", "quantity", "unit_price_display"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product", "order")

    @admin.display(description="Unit price")
    def unit_price_display(self, line):
        return money(line.unit_price, line.order.currency)


class PaymentInline(ReadOnlyInline, admin.StackedInline):
    model = Payment
    fields = ["status", "amount_display", "refunded_display", "attempts", "charge_reference", "updated_display"]
    readonly_fields = fields

    @admin.display(description="Updated")
    def updated_display(self, payment):
        return time_with_seconds(payment.updated_at)

    @admin.display(description="Amount")
    def amount_display(self, payment):
        return money(payment.amount, payment.currency)

    @admin.display(description="Refunded")
    def refunded_display(self, payment):
        return money(payment.refunded_amount, payment.currency)


class TimelineInline(ReadOnlyInline, admin.TabularInline):
    model = TimelineEntry
    verbose_name_plural = "Saga timeline (oldest first)"
    fields = ["at_display", "step", "status", "attempt", "detail", "duration_display"]
    readonly_fields = fields
    ordering = ["at", "id"]

    @admin.display(description="At")
    def at_display(self, entry):
        return time_with_seconds(entry.at, milliseconds=True)  # steps are milliseconds apart

    @admin.display(description="Took")
    def duration_display(self, entry):
        return "-" if entry.duration_ms is None else f"{entry.duration_ms:.1f} ms"


class StuckFilter(admin.SimpleListFilter):
    """Stuck as the dashboard and the sweeper see it (`selectors.stuck_parts`): reserved, or cancelled with the
    payment not settled, and unchanged for SAGA_STUCK_AFTER_SECONDS. Select them all and "Re-drive stuck saga"."""

    title = "stuck saga"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", f"Untouched for more than {settings.SAGA_STUCK_AFTER_SECONDS} s")]

    def queryset(self, request, queryset):
        if self.value() != "yes":
            return queryset
        now = timezone.now()
        stuck = selectors.orders_stuck_queryset(
            stuck_before=now - timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS),
            cancelled_since=now - selectors.STUCK_LOOKBACK,
        )
        return queryset.filter(pk__in=stuck.values("pk"))


class _OrderChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        self.result_list = selectors.orders_with_drivers(self.result_list)  # one query for the page's drivers


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits a 1400 px screen: short ids, the cancel reason folded into the status, a compact date.
    list_display = [
        "order_id", "status_display", "store", "customer_email", "total_display", "payment_status", "driver_name",
        "created_display",
    ]  # fmt: skip
    list_display_links = None  # the short id is the link
    list_filter = [StuckFilter, "status", "awaiting_driver", "cancel_reason", "store", "created_at"]
    list_select_related = ["store", "customer", "payment"]
    search_fields = ["customer__email"]
    search_help_text = "An order id, or (part of) the customer's email."
    ordering = ["-created_at"]
    show_full_result_count = False  # a second COUNT(*) over every order is not worth it
    fieldsets = [
        (None, {"fields": ["id", "status_display", "created_display", "updated_display", "watch"]}),
        ("Who", {"fields": ["customer", "store", "driver"]}),
        ("Money", {"fields": ["total_display", "payment_token"]}),
        ("Delivery", {"fields": ["delivery_address", "delivery_lat", "delivery_lng"]}),
    ]
    readonly_fields = [
        "id", "status_display", "created_display", "updated_display", "watch", "customer", "store", "driver",
        "total_display", "payment_token", "delivery_address", "delivery_lat", "delivery_lng",
    ]  # fmt: skip
    inlines = [PaymentInline, OrderLineInline, TimelineInline]
    actions = ["cancel_with_refund", "redrive_saga"]

    class Media:
        css = {"all": ["tracking/admin.css"]}  # Courier's admin styles (short ids, compact columns)

    def get_changelist(self, request, **kwargs):
        return _OrderChangeList

    def changelist_view(self, request, extra_context=None):
        # Eight columns and the filters need the whole width of a 1400 px screen: no navigation sidebar here
        # (the header, the breadcrumbs and the dashboard lead everywhere else).
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    @admin.display(description="Order", ordering="id")
    def order_id(self, order):
        return short_id(order.pk, reverse("admin:orders_order_change", args=[order.pk]))

    @admin.display(description="Status", ordering="status")
    def status_display(self, order):
        if order.cancel_reason:
            return f"{order.get_status_display()} ({order.get_cancel_reason_display().lower()})"
        return order.get_status_display()

    @admin.display(description="Customer", ordering="customer__email")
    def customer_email(self, order):
        local, _, domain = order.customer.email.partition("@")
        return format_html("{}<wbr>@{}", local, domain)  # long addresses break at the @, not mid-word

    @admin.display(description="Total", ordering="total")
    def total_display(self, order):
        return money(order.total, order.currency)

    @admin.display(description="Payment")
    def payment_status(self, order):
        payment = getattr(order, "payment", None)
        return payment.get_status_display() if payment else "-"

    @admin.display(description="Driver")
    def driver_name(self, order):
        return order.driver.name if order.driver else "-"

    @admin.display(description="Driver")
    def driver(self, order):
        if not order.driver:
            return "-"
        # The driver lives in an upper app: linked by its admin URL's name, never imported.
        url = reverse("admin:delivery_driver_change", args=[order.driver.id])
        return format_html('<a href="{}">{}</a> (driver #{})', url, order.driver.name, order.driver.id)

    @admin.display(description="Placed", ordering="created_at")
    def created_display(self, order):
        return format_html('<span title="{}">{}</span>', time_with_seconds(order.created_at),
                           timezone.localtime(order.created_at).strftime("%d %b %H:%M:%S"))  # fmt: skip

    @admin.display(description="Last change")
    def updated_display(self, order):
        return time_with_seconds(order.updated_at)

    @admin.display(description="Watch")
    def watch(self, order):
        return format_html(
            '<a href="{}" id="order-tracking-link">Tracking page</a> · <a href="{}">Live map</a>',
            reverse("tracking:track", args=[order.pk]), reverse("tracking:live_map"),
        )  # fmt: skip

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        try:  # an order id: the primary key, not a text scan
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        if "@" in term:  # a whole address: emails are stored lowercased, so this is an indexed lookup
            email = User.objects.normalize_email(term)
            return queryset.filter(Q(customer__email=email) | Q(customer__email__icontains=term)), False
        return super().get_search_results(request, queryset, search_term)

    def has_operate_permission(self, request):
        return request.user.has_perm("orders.change_order")

    @admin.action(description="Cancel with refund", permissions=["operate"])
    def cancel_with_refund(self, request, queryset):
        cancelled, already, refused = 0, 0, []
        for order_id, status in queryset.values_list("pk", "status"):
            if status == Order.Status.CANCELLED:
                already += 1
                continue
            try:
                services.order_cancel_and_settle(order_id=order_id, reason=Order.CancelReason.STAFF)
                cancelled += 1
            except DomainError as exc:  # not_cancellable once picked up, and any other deliberate refusal
                refused.append(f"{order_id}: {exc.detail} ({exc.code})")
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} order(s); stock given back, payments refunded.")
        if already:
            self.message_user(request, f"{already} order(s) were already cancelled.", messages.INFO)
        for line in refused:
            self.message_user(request, f"Not cancelled: {line}", messages.ERROR)

    @admin.action(description="Re-drive stuck saga", permissions=["operate"])
    def redrive_saga(self, request, queryset):
        queued, skipped = 0, 0
        for order_id, status in queryset.values_list("pk", "status"):
            if status not in REDRIVABLE:
                skipped += 1
                continue
            try:
                order_saga_task.delay(str(order_id))
            except BrokerError as exc:
                self.message_user(request, f"The task broker is unreachable ({exc}); nothing more queued.",
                                  messages.ERROR)  # fmt: skip
                break
            queued += 1
        if queued:
            self.message_user(request, f"Queued the saga for {queued} order(s).")
        if skipped:
            self.message_user(
                request, f"{skipped} order(s) skipped: the saga only moves reserved or cancelled orders.", messages.INFO
            )


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the relay's backlog, for operators watching an outage drain."""

    list_display = ["id", "topic", "created_at", "published_at"]
    list_filter = ["topic", ("published_at", admin.EmptyFieldListFilter)]
    ordering = ["-id"]
    show_full_result_count = False
