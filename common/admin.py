class ReadOnlyAdminMixin:
    """For records only the platform writes (orders, reservations, outbox): staff look, services change."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
