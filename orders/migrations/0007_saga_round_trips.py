"""The payment saga's database work in two statements: `orders_charge_begin` before the gateway call and
`orders_mark_paid` after a successful one (charge recorded -> stock committed -> `paid` -> events, one commit).

Called by `orders.services`; tested on their own in `orders/tests/test_saga_sql.py`. Before, the same steps
took ~20 round trips and 2 commits per order.
"""

from django.db import migrations

SAGA_SQL = r"""
-- Before a charge attempt: the order as the saga needs it, its payment (created on the first attempt), and this
-- attempt's number (counted only while the payment is pending). Touches the order's updated_at: progress, for
-- the stuck-order sweeper. No row for an unknown order.
CREATE OR REPLACE FUNCTION orders_charge_begin(p_order_id uuid)
RETURNS TABLE (order_status text, total bigint, currency text, payment_token text,
               payment_id bigint, payment_status text, attempt integer, charge_reference text)
LANGUAGE plpgsql AS $$
DECLARE
    o orders_order%ROWTYPE;
    p orders_payment%ROWTYPE;
BEGIN
    -- The order's row before the payment's, as everywhere (orders_mark_paid, payment_settle): no deadlock.
    SELECT * INTO o FROM orders_order WHERE id = p_order_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF o.status = 'reserved' THEN
        INSERT INTO orders_payment AS pay (order_id, status, amount, currency, refunded_amount, charge_reference,
                                           attempts, updated_at)
        VALUES (p_order_id, 'pending', o.total, o.currency, 0, '', 1, clock_timestamp())
        ON CONFLICT (order_id) DO UPDATE SET attempts = pay.attempts + (pay.status = 'pending')::integer
        RETURNING * INTO p;
        UPDATE orders_order SET updated_at = clock_timestamp() WHERE id = p_order_id;
    END IF;
    RETURN QUERY SELECT o.status::text, o.total::bigint, o.currency::text, o.payment_token::text,
                        p.id, p.status::text, p.attempts::integer, p.charge_reference::text;
END;
$$;

-- After the gateway took the money (or on recovery, when the payment already says so): record the charge
-- (p_attempt NULL: already recorded), mark the payment succeeded, and - if the order is still reserved -
-- commit its held stock (on hand and reserved go down together), move it to `paid` and record
-- `order.status_changed` and `order.paid` in the outbox. One commit. Returns the order's status afterwards
-- (`cancelled`: it was cancelled while the charge was in flight; the caller refunds).
CREATE OR REPLACE FUNCTION orders_mark_paid(p_order_id uuid, p_charge_reference text, p_attempt integer,
                                            p_duration_ms double precision)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_status text;
    v_driver bigint;
    v_lines integer;
BEGIN
    IF p_attempt IS NOT NULL THEN
        INSERT INTO orders_timelineentry (order_id, step, status, attempt, detail, duration_ms, at)
        VALUES (p_order_id, 'charge_payment', 'succeeded', p_attempt, left(p_charge_reference, 500), p_duration_ms,
                v_now);
    END IF;
    SELECT status, driver_id INTO v_status, v_driver FROM orders_order WHERE id = p_order_id FOR NO KEY UPDATE;
    -- VOIDED too: a cancellation settled before this charge landed; the money is taken after all.
    UPDATE orders_payment SET status = 'succeeded', charge_reference = p_charge_reference
    WHERE order_id = p_order_id AND status IN ('pending', 'failed', 'voided');
    IF v_status <> 'reserved' THEN
        RETURN v_status;
    END IF;

    -- Product rows in id order, as placing an order locks them: two transactions never wait on each other in a
    -- circle.
    PERFORM 1 FROM inventory_product
    WHERE id IN (SELECT product_id FROM inventory_reservation WHERE order_id = p_order_id AND state = 'held')
    ORDER BY id FOR UPDATE;
    WITH committed AS (
        UPDATE inventory_reservation SET state = 'committed', updated_at = v_now
        WHERE order_id = p_order_id AND state = 'held'
        RETURNING product_id, quantity
    )
    UPDATE inventory_product p SET on_hand = p.on_hand - c.quantity, reserved = p.reserved - c.quantity
    FROM committed c WHERE p.id = c.product_id;
    GET DIAGNOSTICS v_lines = ROW_COUNT;

    INSERT INTO orders_timelineentry (order_id, step, status, attempt, detail, duration_ms, at)
    VALUES (p_order_id, 'commit_stock', 'succeeded', 1, v_lines || ' line(s) committed', NULL, v_now);
    UPDATE orders_order SET status = 'paid', awaiting_driver = true, updated_at = v_now WHERE id = p_order_id;
    INSERT INTO orders_outboxevent (topic, payload, created_at, published_at) VALUES
        ('order.status_changed', jsonb_build_object('order_id', p_order_id::text, 'status', 'paid',
                                                    'cancel_reason', NULL, 'driver_id', v_driver,
                                                    'at', orders_rfc3339(v_now)), v_now, NULL),
        ('order.paid', jsonb_build_object('order_id', p_order_id::text), v_now, NULL);
    RETURN 'paid';
END;
$$;
"""

DROP_SQL = """
DROP FUNCTION IF EXISTS orders_mark_paid(uuid, text, integer, double precision);
DROP FUNCTION IF EXISTS orders_charge_begin(uuid);
"""


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_orders_place")]

    operations = [migrations.RunSQL(SAGA_SQL, reverse_sql=DROP_SQL)]
