"""Staff screens for drivers and assignments. Status and assignments change only through services: a driver
marked busy by hand, or an assignment edited in a form, would break "busy iff one active assignment"."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from common.admin import short_id, time_ago, time_with_seconds
from common.errors import DomainError
from delivery import selectors
from delivery.models import Assignment, Driver
from delivery.services import assignments, drivers


class DriverCreateForm(forms.ModelForm):
    class Meta:
        model = Driver
        fields = ["user"]


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "email", "status", "last_seen", "position"]
    list_filter = ["status"]
    search_fields = ["user__email", "user__name"]
    list_select_related = ["user"]
    readonly_fields = ["user", "status", "status_changed_at", "created_at", "last_seen", "position", "recent_track"]
    raw_id_fields = ["user"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = DriverCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj else ["user"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.pk = drivers.driver_create(user=form.cleaned_data["user"]).pk

    def has_delete_permission(self, request, obj=None):
        return False  # history and assignments refer to drivers; take them offline instead

    @admin.display(description="Name", ordering="user__name")
    def name(self, driver):
        return driver.user.name

    @admin.display(description="Email", ordering="user__email")
    def email(self, driver):
        return driver.user.email

    def _position(self, driver):
        return selectors.last_known_positions([driver.pk]).get(driver.pk)

    @admin.display(description="Last seen")
    def last_seen(self, driver):
        position = self._position(driver)
        return time_ago(position["recorded_at"]) if position else "never"

    @admin.display(description="Position")
    def position(self, driver):
        position = self._position(driver)
        if not position:
            return "-"
        lat, lng = f"{position['lat']:.5f}", f"{position['lng']:.5f}"
        return format_html(
            '<a href="https://www.openstreetmap.org/?mlat={0}&mlon={1}#map=16/{0}/{1}">{0}, {1}</a>', lat, lng
        )

    @admin.display(description="Recent track (newest first)")
    def recent_track(self, driver):
        points = selectors.driver_recent_track(driver_id=driver.pk, limit=50)
        if not points:
            return "-"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((time_with_seconds(p.recorded_at), f"{p.lat:.5f}", f"{p.lng:.5f}", p.speed if p.speed is not None else "-",
              p.heading if p.heading is not None else "-") for p in points),
        )  # fmt: skip
        return format_html(
            "<table><tr><th>recorded at</th><th>lat</th><th>lng</th><th>speed</th><th>heading</th></tr>{}</table>",
            rows,
        )


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["order_link", "driver_name", "status", "assigned", "accepted", "picked_up", "delivered"]
    list_display_links = None
    list_filter = ["status"]
    search_fields = ["=order__id", "driver__user__email", "driver__user__name"]
    list_select_related = ["driver__user", "order"]
    readonly_fields = [f.name for f in Assignment._meta.fields]
    actions = ["reassign"]

    def has_add_permission(self, request):
        return False  # dispatch creates assignments

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Order", ordering="order_id")
    def order_link(self, assignment):
        return short_id(assignment.order_id, reverse("admin:orders_order_change", args=[assignment.order_id]))

    @admin.display(description="Driver", ordering="driver__user__name")
    def driver_name(self, assignment):
        url = reverse("admin:delivery_driver_change", args=[assignment.driver_id])
        return format_html('<a href="{}">{}</a>', url, assignment.driver.user.name)

    @admin.display(description="Assigned", ordering="assigned_at")
    def assigned(self, assignment):
        return time_with_seconds(assignment.assigned_at)

    @admin.display(description="Accepted")
    def accepted(self, assignment):
        return time_with_seconds(assignment.accepted_at)

    @admin.display(description="Picked up")
    def picked_up(self, assignment):
        return time_with_seconds(assignment.picked_up_at)

    @admin.display(description="Delivered")
    def delivered(self, assignment):
        return time_with_seconds(assignment.delivered_at)

    @admin.action(description="Reassign to an available driver near the store…")
    def reassign(self, request, queryset):
        """First the choice (a page listing the available drivers nearest the store, as dispatch would rank
        them), then the move through the delivery service. One order at a time: each has its own store."""
        selected = list(queryset.select_related("order__store", "driver__user")[:2])
        if len(selected) != 1:
            self.message_user(request, "Select one assignment to reassign.", messages.ERROR)
            return None
        assignment = selected[0]
        store = assignment.order.store
        nearby = [
            d for d in selectors.drivers_available_near(lat=store.lat, lng=store.lng) if d["id"] != assignment.driver_id
        ]
        chosen = request.POST.get("driver_id")
        if chosen is None:
            context = {
                **self.admin_site.each_context(request),
                "title": "Reassign an order",
                "opts": self.model._meta,
                "assignment": assignment,
                "store": store,
                "drivers": nearby,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/delivery/assignment/reassign.html", context)
        offered = {str(driver["id"]): driver for driver in nearby}
        if chosen not in offered:
            self.message_user(request, f"{assignment.order_id}: that driver is not available near the store.",
                              messages.ERROR)  # fmt: skip
            return None
        try:
            assignments.assignment_reassign(assignment_id=assignment.pk, to_driver_id=int(chosen))
        except DomainError as exc:
            self.message_user(request, f"{assignment.order_id}: {exc.detail}", messages.ERROR)
        else:
            self.message_user(request, f"{assignment.order_id}: reassigned to {offered[chosen]['name']}.")
        return None
