"""Demo data for `make run`: a store with products, a staff login and a customer login. Safe to run again.

Running it twice changes nothing but the demo passwords (reset to the printed ones) and low stock (topped up),
so the printed logins always work.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from inventory import services as inventory
from inventory.models import Product, Store

STORE_NAME = "Courier Demo Store"
STAFF = {"email": "staff@courier.local", "password": "courier-staff-demo", "name": "Sam Staff"}
CUSTOMER = {"email": "customer@courier.local", "password": "courier-customer-demo", "name": "Cora Customer"}
# (sku, name, price in minor units)
PRODUCTS = [
    ("DEMO-PIZZA", "Margherita pizza", 950),
    ("DEMO-SALAD", "Garden salad", 720),
    ("DEMO-LEMONADE", "Lemonade 0.5 l", 350),
    ("DEMO-TIRAMISU", "Tiramisu", 480),
]
DEMO_STOCK = 500


class Command(BaseCommand):
    help = "Create (or refresh) the demo store, products, staff and customer logins, and print them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-without-debug", action="store_true", help="Seed even with DEBUG off (the passwords are public)."
        )

    def handle(self, *args, allow_without_debug: bool = False, **options):
        if not settings.DEBUG and not allow_without_debug:
            raise CommandError("seed_demo creates logins with published passwords; it runs only with DEBUG=1.")
        with transaction.atomic():
            staff = _user(**STAFF, is_staff=True)
            customer = _user(**CUSTOMER, is_staff=False)
            store = Store.objects.filter(name=STORE_NAME).order_by("created_at").first() or inventory.store_create(
                name=STORE_NAME, address="Alexanderplatz 1, 10178 Berlin", lat=52.5219, lng=13.4132
            )
            products = [_product(store=store, sku=sku, name=name, price=price) for sku, name, price in PRODUCTS]
        self._print(staff=staff, customer=customer, store=store, products=products)

    def _print(self, *, staff: User, customer: User, store: Store, products: list[Product]) -> None:
        out = self.stdout.write
        out(self.style.SUCCESS("Demo data ready."))
        out(f"  staff (admin + API):  {staff.email} / {STAFF['password']}")
        out(f"  customer (API):       {customer.email} / {CUSTOMER['password']}")
        out(f"  store:                {store.name}  id={store.id}")
        for product in products:
            out(f"  product:              id={product.id}  {product.sku}  {product.name}  ({product.available} left)")


def _user(*, email: str, password: str, name: str, is_staff: bool) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        return User.objects.create_user(email, password, name=name, is_staff=is_staff, is_superuser=is_staff)
    user.set_password(password)
    user.is_active = True
    user.save(update_fields=["password", "is_active"])
    return user


def _product(*, store: Store, sku: str, name: str, price: int) -> Product:
    product = Product.objects.filter(store=store, sku=sku).first()
    if product is None:
        return inventory.product_create(store=store, sku=sku, name=name, price=price, currency="EUR", stock=DEMO_STOCK)
    if product.available < DEMO_STOCK // 10:
        return inventory.product_restock(product_id=product.id, quantity=DEMO_STOCK)
    return product
