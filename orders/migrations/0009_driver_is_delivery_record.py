"""Who drives an order is delivery's record alone (its assignments): the order's copy goes, and so does every
mention of it in the functions of 0006 and 0007, which are re-created as they were, without the two columns.

Their text is taken from those migrations (frozen, as migrations are) and each change is checked to apply, so
this file says only what changes."""

from importlib import import_module

from django.db import migrations, models

PLACE_SQL = import_module("orders.migrations.0006_orders_place").PLACE_SQL
SAGA_SQL = import_module("orders.migrations.0007_saga_round_trips").SAGA_SQL


def _without(sql: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert sql.count(old) == 1, old
        sql = sql.replace(old, new)
    return sql


PLACE_WITHOUT_DRIVER = _without(
    PLACE_SQL,
    ("payment_token, driver_id, driver_user_id, created_at", "payment_token, created_at"),
    ("p_payment_token, NULL, NULL, v_now", "p_payment_token, v_now"),
)
SAGA_WITHOUT_DRIVER = _without(
    SAGA_SQL,
    ("    v_driver bigint;\n", ""),
    ("SELECT status, driver_id INTO v_status, v_driver FROM", "SELECT status INTO v_status FROM"),
    ("'driver_id', v_driver,", "'driver_id', NULL,"),
)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0002_lean_indexes"),
        ("orders", "0008_order_saga_redriven_at"),
    ]

    operations = [
        migrations.RunSQL(PLACE_WITHOUT_DRIVER + SAGA_WITHOUT_DRIVER, reverse_sql=PLACE_SQL + SAGA_SQL),
        migrations.RemoveConstraint(
            model_name="order",
            name="order_awaiting_driver_follows_status",
        ),
        migrations.RemoveField(
            model_name="order",
            name="driver_id",
        ),
        migrations.RemoveField(
            model_name="order",
            name="driver_user",
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("awaiting_driver", True), ("status", "paid")),
                    models.Q(("awaiting_driver", True), ("status", "assigned")),
                    models.Q(models.Q(("status", "paid"), _negated=True), ("awaiting_driver", False)),
                    _connector="OR",
                ),
                name="order_awaiting_driver_follows_status",
            ),
        ),
    ]
