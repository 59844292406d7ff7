import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from accounts.models import User
from inventory.models import Product, Store
from orders.management.commands.seed_demo import CUSTOMER, PRODUCTS, STAFF, STORE_NAME


def test_seed_demo_twice_creates_everything_once_and_the_printed_logins_work(db, settings, capsys):
    # given DEBUG (make run) and a customer who changed the demo password
    settings.DEBUG = True
    call_command("seed_demo")
    customer = User.objects.get(email=CUSTOMER["email"])
    customer.set_password("something else entirely")
    customer.save(update_fields=["password"])

    # when it runs again
    call_command("seed_demo")

    # then nothing is duplicated and both printed logins work
    assert Store.objects.filter(name=STORE_NAME).count() == 1
    assert Product.objects.filter(store__name=STORE_NAME).count() == len(PRODUCTS)
    assert User.objects.filter(email__in=[STAFF["email"], CUSTOMER["email"]]).count() == 2
    # (a sign-in always comes with its request: the lockout counts per client address)
    sign_in = RequestFactory().post("/accounts/login/")
    assert authenticate(sign_in, email=CUSTOMER["email"], password=CUSTOMER["password"]) == customer
    staff = authenticate(sign_in, email=STAFF["email"], password=STAFF["password"])
    assert staff.is_staff and staff.is_superuser
    printed = capsys.readouterr().out
    assert f"{CUSTOMER['email']} / {CUSTOMER['password']}" in printed
    assert f"{STAFF['email']} / {STAFF['password']}" in printed


def test_seed_demo_tops_up_low_stock(db, settings):
    # given a demo product that sold out
    settings.DEBUG = True
    call_command("seed_demo")
    Product.objects.filter(sku=PRODUCTS[0][0]).update(on_hand=0)

    # when it runs again
    call_command("seed_demo")

    # then it can be ordered again
    assert Product.objects.get(sku=PRODUCTS[0][0]).available > 0


def test_seed_demo_refuses_without_debug_and_writes_nothing(db, settings):
    # given production settings
    settings.DEBUG = False

    # when / then
    with pytest.raises(CommandError):
        call_command("seed_demo")
    assert not User.objects.filter(email=STAFF["email"]).exists()
    assert not Store.objects.filter(name=STORE_NAME).exists()
