from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.timesince import timesince


class ReadOnlyAdminMixin:
    """For records only the platform writes (orders, reservations, outbox): staff look, services change."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def short_id(full_id, url: str | None = None) -> str:
    """The first 8 characters of an id (enough to tell orders apart on a screen), the full id on hover and
    in the page the link opens: UUIDs in full wrapped over four lines of the order list."""
    full = str(full_id)
    if url is None:
        return format_html('<span class="short-id" title="{}">{}</span>', full, full[:8])
    return format_html('<a class="short-id" href="{}" title="{}">{}</a>', url, full, full[:8])


def time_with_seconds(moment, *, milliseconds: bool = False) -> str:
    """Local time to the second (saga steps are seconds or less apart; the admin's default shows minutes)."""
    if moment is None:
        return "-"
    local = timezone.localtime(moment)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{local.microsecond // 1000:03d}" if milliseconds else text


def time_ago(moment) -> str:
    """ "3 minutes ago", with the exact time on hover."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        moment = parse_datetime(moment)
    if (timezone.now() - moment).total_seconds() < 60:
        return format_html('<span title="{}">just now</span>', time_with_seconds(moment))
    return format_html('<span title="{}">{} ago</span>', time_with_seconds(moment), timesince(moment, depth=1))
