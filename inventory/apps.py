from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"

    def ready(self):
        from common import invariants
        from inventory.invariants import stock_matches_reservations

        invariants.register("stock_matches_reservations", stock_matches_reservations)
