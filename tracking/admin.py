"""Courier's admin site: branding, the operations dashboard as its home, and the live map in its navigation.

It lives in `tracking`, the top layer, because the dashboard reads orders and drivers alike.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from tracking import selectors

CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 600, 140, 16, 20


class CourierAdminSite(admin.AdminSite):
    site_header = "Courier operations"
    site_title = "Courier admin"
    index_title = "Operations dashboard"
    site_url = "/"  # "View site": the landing page
    index_template = "tracking/admin_index.html"

    def index(self, request, extra_context=None):
        dashboard = selectors.operations_dashboard(now=timezone.now())
        context = {
            "dashboard": dashboard,
            "orders_chart": orders_chart(dashboard["per_minute"]),
            "status_tiles": _status_tiles(dashboard),
        }
        return super().index(request, {**context, **(extra_context or {})})

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label is None:  # the index and the sidebar: operations first
            apps.insert(0, _operations_app())
        return apps


# What each active status means to someone running operations.
STATUS_TILES = [
    ("reserved", "Reserved", "stock held, payment being taken", "status__exact=reserved"),
    ("awaiting_driver", "Waiting for a driver", "paid, or given back by its driver", "awaiting_driver__exact=1"),
    (
        "assigned",
        "Assigned",
        "a driver has it, on the way to the store",
        "status__exact=assigned&awaiting_driver__exact=0",
    ),
    ("picked_up", "Picked up", "on the way to the customer", "status__exact=picked_up"),
]


def _status_tiles(dashboard: dict) -> list[dict]:
    changelist = reverse("admin:orders_order_changelist")
    tiles = [
        {"label": label, "hint": hint, "count": dashboard["active"][status], "url": f"{changelist}?{query}",
         "status": status}
        for status, label, hint, query in STATUS_TILES
    ]  # fmt: skip
    for status, label in (("delivered", "Delivered"), ("cancelled", "Cancelled")):
        tiles.append({"label": label, "hint": "in the last hour", "count": dashboard["finished"][status],
                      "url": f"{changelist}?status__exact={status}", "status": status})  # fmt: skip
    return tiles


def _operations_app() -> dict:
    live_map = reverse("tracking:live_map")

    def entry(name, url):
        return {"name": name, "object_name": name.replace(" ", ""), "admin_url": url, "add_url": None,
                "view_only": True, "perms": {"view": True}}  # fmt: skip

    return {
        "name": "Operations",
        "app_label": "operations",
        # The sidebar marks the app whose url is in the current path: the live map's, not /admin/ (in every path).
        "app_url": live_map,
        "has_module_perms": True,
        # No "Dashboard" entry: it is the admin's home (the header and "Home" lead there), and the sidebar
        # would mark it current on every page, /admin/ being in every path.
        "models": [entry("Live map", live_map)],
    }


def orders_chart(per_minute: list[dict]) -> SafeString:
    """Orders (blue) and payment failures (red) per minute as an inline SVG bar chart, drawn here on the
    server: no chart library, no CDN, readable without JavaScript."""
    if not per_minute:
        return SafeString("")
    peak = max(1, *(minute["orders"] for minute in per_minute))
    slot = CHART_WIDTH / len(per_minute)
    plot = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM

    def bar(i, value, css):
        height = plot * value / peak
        y = CHART_TOP + plot - height
        return (f"{i * slot + 1:.1f}", f"{y:.1f}", f"{max(slot - 2, 1):.1f}", f"{height:.1f}", css)

    bars = format_html_join(
        "",
        '<g><title>{} UTC: {} orders, {} payment failures</title>'
        '<rect x="{}" y="{}" width="{}" height="{}" class="{}"/>'
        '<rect x="{}" y="{}" width="{}" height="{}" class="{}"/></g>',
        (
            (minute["minute"].strftime("%H:%M"), minute["orders"], minute["payment_failures"],
             *bar(i, minute["orders"], "bar-orders"), *bar(i, minute["payment_failures"], "bar-failures"))
            for i, minute in enumerate(per_minute)
        ),
    )  # fmt: skip
    baseline = CHART_TOP + plot
    first, last = per_minute[0]["minute"], per_minute[-1]["minute"]
    return format_html(
        '<svg class="orders-chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{label}">'
        '<line x1="0" y1="{base}" x2="{w}" y2="{base}" class="axis"/>'
        '<text x="0" y="11" class="tick">{peak} / min</text>'
        '<text x="0" y="{h}" class="tick">{first}</text>'
        '<text x="{w}" y="{h}" class="tick end">{last} UTC</text>{bars}</svg>',
        w=CHART_WIDTH, h=CHART_HEIGHT, base=baseline, peak=peak, bars=bars,
        first=first.strftime("%H:%M"), last=last.strftime("%H:%M"),
        label=f"Orders and payment failures per minute, {first:%H:%M} to {last:%H:%M} UTC",
    )  # fmt: skip
