"""`orders_place`: placing an order is one statement, one commit.

Called by `orders.services.order_place` as `SELECT * FROM orders_place(...)`. In one transaction it claims the
Idempotency-Key, checks the business rules (store, products, duplicates, one currency), holds stock for every
line, writes the order, its lines, the reservations, the timeline entry, the outbox event and the answer to
replay, and returns that answer. Tested on its own in `orders/tests/test_place_sql.py`.

Outcomes (column `outcome`):
  created       201, `body` is the order as the API shows it (also stored for replays)
  out_of_stock  409, `body` is the problem document (stored too: a retry gets the same answer); nothing held
  replayed      the stored answer of an earlier request with this key and the same fingerprint
  reused        the key was used with another request body (nothing written)
  in_flight     another transaction holds this key right now (nothing written)
  invalid       a business rule failed; `body` is [{"line": index or null, "code": ...}] (nothing written)

Why it is safe under concurrency:
  - "In flight" is a transaction-level advisory lock on (customer, key), tried without waiting. PostgreSQL
    releases it when the transaction ends however it ends, so a failed request never leaves a claim behind;
    the key row is written only together with its answer.
  - Product rows are locked in id order before anything is checked, so two orders sharing products never
    deadlock, and the stock checks that follow see the latest committed counters.
"""

from django.db import migrations

PLACE_SQL = r"""
-- DRF's rendering of a datetime (RFC 3339 in UTC, microseconds only when there are any), so an answer built
-- here is byte-for-byte what the API's serializer would say.
CREATE OR REPLACE FUNCTION orders_rfc3339(at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_part('microseconds', at)::bigint % 1000000 = 0 THEN ''
                ELSE to_char(at AT TIME ZONE 'UTC', '.US') END
        || 'Z'
$$;

CREATE OR REPLACE FUNCTION orders_place(
    p_customer_id bigint,
    p_key text,                 -- the Idempotency-Key; NULL for internal callers that need none
    p_request_hash text,        -- fingerprint of the request body
    p_store_id uuid,
    p_product_ids bigint[],     -- one per line in the client's order; NULL where the id names no product
    p_quantities integer[],
    p_address text,
    p_lat double precision,
    p_lng double precision,
    p_payment_token text,
    p_out_of_stock jsonb        -- the out-of-stock problem document without its "items" (built by the caller)
) RETURNS TABLE (outcome text, status integer, body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();  -- not now(): distinct per order even inside one transaction
    v_order_id uuid := gen_random_uuid();
    v_known orders_idempotencykey%ROWTYPE;
    v_problems jsonb;
    v_total bigint;
    v_currency text;
    v_lines integer := cardinality(p_product_ids);
    v_body jsonb;
BEGIN
    -- 1. The key: busy elsewhere -> in flight; answered before -> replay (same body) or refuse (another body).
    IF p_key IS NOT NULL THEN
        IF NOT pg_try_advisory_xact_lock(hashtextextended(p_customer_id::text || ':' || p_key, 0)) THEN
            RETURN QUERY SELECT 'in_flight', 409, NULL::jsonb;
            RETURN;
        END IF;
        SELECT * INTO v_known FROM orders_idempotencykey k WHERE k.user_id = p_customer_id AND k.key = p_key;
        IF FOUND THEN
            IF v_known.request_hash <> p_request_hash THEN
                RETURN QUERY SELECT 'reused', 422, NULL::jsonb;
            ELSE
                RETURN QUERY SELECT 'replayed', v_known.response_status::integer, v_known.response_body;
            END IF;
            RETURN;
        END IF;
    END IF;

    -- 2. Lock the products in id order (deadlock-free), then check the rules on what is now current.
    PERFORM 1 FROM inventory_product WHERE id = ANY(p_product_ids) ORDER BY id FOR UPDATE;

    IF NOT EXISTS (SELECT 1 FROM inventory_store s WHERE s.id = p_store_id AND s.is_active) THEN
        RETURN QUERY SELECT 'invalid', 400, jsonb_build_array(jsonb_build_object('line', NULL, 'code', 'unknown_store'));
        RETURN;
    END IF;
    SELECT jsonb_agg(jsonb_build_object('line', l.n - 1, 'code', l.problem) ORDER BY l.n) INTO v_problems
    FROM (
        SELECT line.n,
               CASE WHEN line.product_id IS NOT NULL
                         AND count(*) OVER (PARTITION BY line.product_id ORDER BY line.n) > 1 THEN 'duplicate'
                    WHEN p.id IS NULL OR NOT p.is_active THEN 'unknown_product'
                    WHEN p.store_id <> p_store_id THEN 'wrong_store'
                    -- one order, one currency: the first line's; never a sum across currencies
                    WHEN p.currency <> first_value(p.currency) OVER (ORDER BY line.n) THEN 'mixed_currency'
               END AS problem
        FROM unnest(p_product_ids, p_quantities) WITH ORDINALITY AS line(product_id, quantity, n)
        LEFT JOIN inventory_product p ON p.id = line.product_id
    ) l
    WHERE l.problem IS NOT NULL;
    IF v_problems IS NOT NULL THEN
        RETURN QUERY SELECT 'invalid', 400, v_problems;
        RETURN;
    END IF;

    -- 3. Stock for every line, or nothing held at all: the answer names every short line (product-id order).
    SELECT jsonb_agg(jsonb_build_object(
               'product_id', p.id::text, 'requested', line.quantity,
               'available', greatest(p.on_hand - p.reserved, 0)) ORDER BY p.id)
      INTO v_problems
    FROM unnest(p_product_ids, p_quantities) AS line(product_id, quantity)
    JOIN inventory_product p ON p.id = line.product_id
    WHERE p.on_hand - p.reserved < line.quantity;
    IF v_problems IS NOT NULL THEN
        v_body := p_out_of_stock || jsonb_build_object('items', v_problems);
        IF p_key IS NOT NULL THEN
            INSERT INTO orders_idempotencykey (user_id, key, request_hash, response_status, response_body, created_at)
            VALUES (p_customer_id, p_key, p_request_hash, 409, v_body, v_now);
        END IF;
        RETURN QUERY SELECT 'out_of_stock', 409, v_body;
        RETURN;
    END IF;

    -- 4. Hold, and write the order with everything that belongs to it.
    UPDATE inventory_product p SET reserved = p.reserved + line.quantity
    FROM unnest(p_product_ids, p_quantities) AS line(product_id, quantity)
    WHERE p.id = line.product_id;

    SELECT sum(p.price::bigint * line.quantity), min(p.currency) INTO v_total, v_currency
    FROM unnest(p_product_ids, p_quantities) AS line(product_id, quantity)
    JOIN inventory_product p ON p.id = line.product_id;

    INSERT INTO orders_order (id, customer_id, store_id, status, cancel_reason, total, currency, delivery_address,
                              delivery_lat, delivery_lng, payment_token, driver_id, driver_user_id, created_at, updated_at)
    VALUES (v_order_id, p_customer_id, p_store_id, 'reserved', NULL, v_total, v_currency, p_address,
            p_lat, p_lng, p_payment_token, NULL, NULL, v_now, v_now);

    INSERT INTO orders_orderline (order_id, product_id, name, quantity, unit_price)
    SELECT v_order_id, p.id, p.name, line.quantity, p.price
    FROM unnest(p_product_ids, p_quantities) WITH ORDINALITY AS line(product_id, quantity, n)
    JOIN inventory_product p ON p.id = line.product_id
    ORDER BY line.n;

    INSERT INTO inventory_reservation (order_id, product_id, quantity, state, created_at, updated_at)
    SELECT v_order_id, line.product_id, line.quantity, 'held', v_now, v_now
    FROM unnest(p_product_ids, p_quantities) AS line(product_id, quantity)
    ORDER BY line.product_id;

    INSERT INTO orders_timelineentry (order_id, step, status, attempt, detail, duration_ms, at)
    VALUES (v_order_id, 'reserve_stock', 'succeeded', 1, v_lines || ' line(s) held', NULL, v_now);

    -- The relay process publishes it (it polls the unpublished rows): no broker call in this transaction.
    INSERT INTO orders_outboxevent (topic, payload, created_at, published_at)
    VALUES ('order.reserved', jsonb_build_object('order_id', v_order_id::text), v_now, NULL);

    -- 5. The answer, from what was just written (the shape of orders.api.OrderOutput; a test compares them).
    v_body := jsonb_build_object(
        'id', v_order_id, 'status', 'reserved', 'cancel_reason', NULL,
        'store_id', p_store_id, 'customer_id', p_customer_id::text,
        'total', v_total, 'currency', v_currency,
        'items', (SELECT jsonb_agg(jsonb_build_object('product_id', p.id::text, 'name', p.name,
                                                      'quantity', line.quantity, 'unit_price', p.price)
                                   ORDER BY line.n)
                  FROM unnest(p_product_ids, p_quantities) WITH ORDINALITY AS line(product_id, quantity, n)
                  JOIN inventory_product p ON p.id = line.product_id),
        'delivery', jsonb_build_object('address', p_address, 'lat', p_lat, 'lng', p_lng),
        'payment', NULL, 'driver', NULL,
        'created_at', orders_rfc3339(v_now), 'updated_at', orders_rfc3339(v_now),
        'timeline', jsonb_build_array(jsonb_build_object(
            'step', 'reserve_stock', 'status', 'succeeded', 'at', orders_rfc3339(v_now),
            'detail', v_lines || ' line(s) held')));
    IF p_key IS NOT NULL THEN
        INSERT INTO orders_idempotencykey (user_id, key, request_hash, response_status, response_body, created_at)
        VALUES (p_customer_id, p_key, p_request_hash, 201, v_body, v_now);
    END IF;
    RETURN QUERY SELECT 'created', 201, v_body;
END;
$$;
"""

DROP_SQL = """
DROP FUNCTION IF EXISTS orders_place(bigint, text, text, uuid, bigint[], integer[], text, double precision,
                                     double precision, text, jsonb);
DROP FUNCTION IF EXISTS orders_rfc3339(timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [("orders", "0005_lean_indexes"), ("inventory", "0002_lean_indexes")]

    operations = [migrations.RunSQL(PLACE_SQL, reverse_sql=DROP_SQL)]
