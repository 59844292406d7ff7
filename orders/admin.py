"""Staff screens for orders: read-only records, changed only through actions that call services.

Nothing about an order is editable in a form: a status or amount typed by hand would bypass the saga,
the stock moves and the outbox. `Model.save()` from a form opened a minute ago would also write back a
stale status over whatever the saga did since.
"""

import uuid

from django.contrib import admin, messages
from django.db.models import Q
from kombu.exceptions import OperationalError as BrokerError

from common.admin import ReadOnlyAdminMixin
from common.problems import Problem
from orders import services
from orders.models import Order, OrderLine, OutboxEvent, Payment, TimelineEntry
from orders.tasks import order_saga_task

# ISO 4217 currencies without minor units; everything else we sell in has two decimals.
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX"})

# The saga has work to do only for these (charge a reserved order, settle a cancelled one's payment).
REDRIVABLE = {Order.Status.RESERVED, Order.Status.CANCELLED}


def money(amount: int | None, currency: str) -> str:
    if amount is None:
        return "-"
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f"{amount} {currency}"
    return f"{amount // 100}.{amount % 100:02d} {currency}"


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
    fields = ["status", "amount_display", "refunded_display", "attempts", "charge_reference", "updated_at"]
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount_display(self, payment):
        return money(payment.amount, payment.currency)

    @admin.display(description="Refunded")
    def refunded_display(self, payment):
        return money(payment.refunded_amount, payment.currency)


class TimelineInline(ReadOnlyInline, admin.TabularInline):
    model = TimelineEntry
    verbose_name_plural = "Saga timeline (oldest first)"
    fields = ["at", "step", "status", "attempt", "detail", "duration_ms"]
    readonly_fields = fields
    ordering = ["at", "id"]


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id", "status", "cancel_reason", "store", "customer_email", "total_display", "payment_status",
        "driver_name", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "cancel_reason", "store", "created_at"]
    list_select_related = ["store", "customer", "payment", "driver_user"]
    search_fields = ["customer__email"]
    search_help_text = "An order id, or (part of) the customer's email."
    ordering = ["-created_at"]
    show_full_result_count = False  # a second COUNT(*) over every order is not worth it
    fieldsets = [
        (None, {"fields": ["id", "status", "cancel_reason", "created_at", "updated_at"]}),
        ("Who", {"fields": ["customer", "store", "driver_user", "driver_id"]}),
        ("Money", {"fields": ["total_display", "payment_token"]}),
        ("Delivery", {"fields": ["delivery_address", "delivery_lat", "delivery_lng"]}),
    ]
    readonly_fields = [
        "id", "status", "cancel_reason", "created_at", "updated_at", "customer", "store", "driver_user",
        "driver_id", "total_display", "payment_token", "delivery_address", "delivery_lat", "delivery_lng",
    ]  # fmt: skip
    inlines = [PaymentInline, OrderLineInline, TimelineInline]
    actions = ["cancel_with_refund", "redrive_saga"]

    @admin.display(description="Customer", ordering="customer__email")
    def customer_email(self, order):
        return order.customer.email

    @admin.display(description="Total", ordering="total")
    def total_display(self, order):
        return money(order.total, order.currency)

    @admin.display(description="Payment")
    def payment_status(self, order):
        payment = getattr(order, "payment", None)
        return payment.status if payment else "-"

    @admin.display(description="Driver")
    def driver_name(self, order):
        return order.driver_user.name if order.driver_user else "-"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        try:  # an order id: the primary key, not a text scan
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        if "@" in term:  # a whole address: emails are stored lowercased, so this is an indexed lookup
            return queryset.filter(Q(customer__email=term.lower()) | Q(customer__email__icontains=term)), False
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
            except Problem as exc:  # not_cancellable once picked up, and any other deliberate refusal
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
