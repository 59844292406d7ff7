"""Staff screens for drivers and assignments. Status and assignments change only through services: a driver
marked busy by hand, or an assignment edited in a form, would break "busy iff one active assignment"."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.utils.html import format_html, format_html_join

from common.problems import Problem
from delivery import selectors, services
from delivery.models import Assignment, Driver


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
            obj.pk = services.driver_create(user=form.cleaned_data["user"]).pk

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
        return position["recorded_at"] if position else "-"

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
            ((p.recorded_at.isoformat(), f"{p.lat:.5f}", f"{p.lng:.5f}", p.speed if p.speed is not None else "-",
              p.heading if p.heading is not None else "-") for p in points),
        )  # fmt: skip
        return format_html(
            "<table><tr><th>recorded at</th><th>lat</th><th>lng</th><th>speed</th><th>heading</th></tr>{}</table>",
            rows,
        )


class ReassignForm(ActionForm):
    driver_id = forms.IntegerField(required=False, label="to driver id", min_value=1)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "driver", "status", "assigned_at", "accepted_at", "picked_up_at", "delivered_at"]
    list_filter = ["status"]
    search_fields = ["=order__id", "driver__user__email"]
    list_select_related = ["driver__user", "order"]
    readonly_fields = [f.name for f in Assignment._meta.fields]
    action_form = ReassignForm
    actions = ["reassign"]

    def has_add_permission(self, request):
        return False  # dispatch creates assignments

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Reassign to the driver id given above")
    def reassign(self, request, queryset):
        driver_id = request.POST.get("driver_id")
        if not (driver_id or "").isascii() or not driver_id.isdecimal() or len(driver_id) > 18:
            self.message_user(request, "Give the id of an available driver to reassign to.", messages.ERROR)
            return
        for assignment in queryset:
            try:
                services.assignment_reassign(assignment_id=assignment.pk, to_driver_id=int(driver_id))
            except Problem as exc:
                self.message_user(request, f"{assignment.order_id}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{assignment.order_id}: reassigned to driver {driver_id}")
