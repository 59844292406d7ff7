"""Stores and products for tests. Test code only: production never imports it."""

import factory

from inventory.models import Product, Store


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    name = factory.Sequence(lambda n: f"Store {n}")
    address = "Alexanderplatz 1, Berlin"
    lat = 52.5219
    lng = 13.4132


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    store = factory.SubFactory(StoreFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price = 1250
    currency = "EUR"
    on_hand = 10
