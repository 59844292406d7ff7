from django.db.models import F, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from inventory.models import Product, Reservation


def stock_matches_reservations() -> list[str]:
    """reserved = the sum of held reservations, and no counter is negative, for every product."""
    held = (
        Reservation.objects.filter(product=OuterRef("pk"), state=Reservation.State.HELD)
        .values("product")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    products = Product.objects.annotate(held=Coalesce(Subquery(held, output_field=IntegerField()), Value(0)))
    violations = [
        f"product {p.pk}: reserved={p.reserved} but held reservations sum to {p.held}"
        for p in products.exclude(reserved=F("held")).only("pk", "reserved")
    ]
    violations += [
        f"product {p.pk}: negative stock (on_hand={p.on_hand}, reserved={p.reserved})"
        for p in Product.objects.filter(on_hand__lt=0) | Product.objects.filter(reserved__lt=0)
    ]
    return violations
