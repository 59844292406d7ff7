"""Catalog reads (writes are in services.py)."""

from uuid import UUID

from django.db.models import QuerySet

from inventory.models import Product


def products_matching(*, store_id: UUID | None = None, search: str | None = None) -> QuerySet[Product]:
    """The catalog, optionally one store's, optionally names containing `search` (case-insensitive)."""
    products = Product.objects.all()
    if store_id is not None:
        products = products.filter(store_id=store_id)
    if search:
        products = products.filter(name__icontains=search)
    return products


def product_get(*, product_id: int | None) -> Product | None:
    """None both for no such product and for no id at all (a client's id that names nothing: `common.ids`)."""
    return None if product_id is None else Product.objects.filter(pk=product_id).first()
