"""Staff screens for stores, products and stock.

Stock counters are read-only here: they move only through `inventory.services` (reservations and
`product_restock`). Even the descriptive fields are saved through services, with an UPDATE naming only
the changed columns, because `Model.save()` would write back the `on_hand`/`reserved` values read when
the form was opened and silently undo every reservation made in between.
"""

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from common.admin import ReadOnlyAdminMixin
from common.errors import DomainError
from common.money import money
from inventory import services
from inventory.models import Product, Reservation, Store

LOW_STOCK_THRESHOLD = 5
MAX_RESTOCK_QUANTITY = 10_000_000  # same bound as the restock API


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["name", "address", "lat", "lng", "is_active", "created_at", "products_link"]
    list_filter = ["is_active"]
    search_fields = ["name", "address"]
    ordering = ["name"]
    readonly_fields = ["id", "created_at"]
    fields = ["id", "name", "address", "lat", "lng", "is_active", "created_at"]
    show_full_result_count = False

    @admin.display(description="Products")
    def products_link(self, store):
        url = reverse("admin:inventory_product_changelist") + f"?store__id__exact={store.pk}"
        return format_html('<a href="{}">products</a>', url)

    def save_model(self, request, obj, form, change):
        if change:
            fields = {f: form.cleaned_data[f] for f in form.changed_data if f in services.STORE_EDITABLE_FIELDS}
            services.store_update(store_id=obj.pk, fields=fields)
        else:
            data = {f: form.cleaned_data[f] for f in ("name", "address", "lat", "lng", "is_active")}
            created = services.store_create(**data)
            obj.pk, obj.created_at = created.pk, created.created_at

    def has_delete_permission(self, request, obj=None):
        return False  # orders point at stores: deactivate instead


class LowStockFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request, model_admin):
        return [("low", f"Low (≤ {LOW_STOCK_THRESHOLD} available)"), ("out", "Out of stock (0 available)")]

    def queryset(self, request, queryset):
        queryset = queryset.with_available()
        if self.value() == "low":
            return queryset.filter(available_stock__lte=LOW_STOCK_THRESHOLD)
        if self.value() == "out":
            return queryset.filter(available_stock__lte=0)
        return queryset


class RestockForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_RESTOCK_QUANTITY, label="Units to add to each product")


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["store", "sku", "name", "price", "currency", "on_hand", "is_active"]
        labels = {"on_hand": "Initial stock"}

    def clean_currency(self):
        currency = self.cleaned_data["currency"].upper()
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise forms.ValidationError("An ISO 4217 code, like EUR.")
        return currency

    def clean_on_hand(self):
        on_hand = self.cleaned_data.get("on_hand") or 0
        if not 0 <= on_hand <= MAX_RESTOCK_QUANTITY:
            raise forms.ValidationError(f"Between 0 and {MAX_RESTOCK_QUANTITY}.")
        return on_hand


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ["name", "sku", "store", "price_display", "on_hand", "reserved", "available_stock", "is_active"]
    list_filter = [LowStockFilter, "is_active", "store"]
    list_select_related = ["store"]
    search_fields = ["name", "sku"]
    ordering = ["store__name", "name"]
    autocomplete_fields = ["store"]
    actions = ["restock_selected"]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).with_available()  # for sorting by it

    @admin.display(description="Price", ordering="price")
    def price_display(self, product):
        return money(product.price, product.currency)

    @admin.display(description="Available", ordering="available_stock")
    def available_stock(self, product):
        return product.available

    @admin.display(description="Reservations")
    def reservations_link(self, product):
        url = reverse("admin:inventory_reservation_changelist") + f"?product__id__exact={product.pk}"
        return format_html('<a href="{}">reservations of this product</a>', url)

    def get_fields(self, request, obj=None):
        if obj is None:  # adding: the initial stock is the one counter staff set by hand
            return ["store", "sku", "name", "price", "currency", "on_hand", "is_active"]
        return [
            "store", "sku", "name", "price", "currency", "is_active",
            "on_hand", "reserved", "available_stock", "reservations_link", "created_at",
        ]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["store", "on_hand", "reserved", "available_stock", "reservations_link", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            fields = {f: form.cleaned_data[f] for f in form.changed_data if f in services.PRODUCT_EDITABLE_FIELDS}
            services.product_update(product_id=obj.pk, fields=fields)
            return
        data = form.cleaned_data
        created = services.product_create(
            store=data["store"], sku=data["sku"], name=data["name"], price=data["price"],
            currency=data["currency"], stock=data["on_hand"],
        )  # fmt: skip
        if not data["is_active"]:
            services.product_update(product_id=created.pk, fields={"is_active": False})
        obj.pk, obj.created_at = created.pk, created.created_at

    def has_delete_permission(self, request, obj=None):
        return False  # order lines and reservations point at products: deactivate instead

    @admin.action(description="Restock selected products…", permissions=["change"])
    def restock_selected(self, request, queryset):
        form = RestockForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            quantity = form.cleaned_data["quantity"]
            done, refused = 0, []
            for product_id, name in queryset.order_by("pk").values_list("pk", "name"):
                try:
                    services.product_restock(product_id=product_id, quantity=quantity)
                    done += 1
                except DomainError as exc:
                    refused.append(f"{name}: {exc.detail}")
            if done:
                self.message_user(request, f"Added {quantity} units to {done} product(s).", messages.SUCCESS)
            for line in refused:
                self.message_user(request, f"Not restocked: {line}", messages.ERROR)
            return None  # back to the changelist
        context = {
            **self.admin_site.each_context(request),
            "title": "Restock products",
            "opts": self.model._meta,
            "products": queryset.select_related("store").order_by("name"),
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "action": "restock_selected",
        }
        return TemplateResponse(request, "admin/inventory/product/restock.html", context)


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: reservations change only with their order's saga."""

    list_display = ["order_id", "product", "quantity", "state", "created_at", "updated_at"]
    list_filter = ["state", "created_at"]
    list_select_related = ["product"]
    search_fields = ["product__sku"]
    search_help_text = "An order id, or a product SKU."
    ordering = ["-created_at"]
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        try:  # an order id: an indexed exact match instead of a text scan
            return queryset.filter(order_id=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
