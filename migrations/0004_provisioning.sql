-- ProvisioningService: number orders, their history, and the inbox of vendor callbacks.

-- One row per submitted order, written before the vendor is called (state `submitting`), so that
-- a request_id orders numbers at most once, ever. `unknown`: sent, but no clear answer came back
-- (it is never sent again). The other states are the order's, once the vendor named it.
CREATE TABLE provisioning_orders (
    id            BIGSERIAL   PRIMARY KEY,
    tenant        TEXT        NOT NULL,
    request_id    TEXT        NOT NULL,
    request_hash  BYTEA       NOT NULL,
    order_id      TEXT,
    state         TEXT        NOT NULL
                  CHECK (state IN ('submitting', 'unknown', 'pending', 'completed', 'failed')),
    company_id    TEXT        NOT NULL DEFAULT '',
    numbers       TEXT[]      NOT NULL DEFAULT '{}',
    message       TEXT        NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- While `submitting`: when the vendor's answer is due at the latest (the tenant's timeout plus
    -- a margin). A row still `submitting` after that belongs to a call that ended without storing
    -- an answer (its process stopped): it is no longer in flight and is swept to `unknown`.
    answer_by     TIMESTAMPTZ,
    UNIQUE (tenant, request_id),
    UNIQUE (tenant, order_id),
    CHECK ((order_id IS NULL) = (state IN ('submitting', 'unknown')))
);
-- ListOrders (newest first, optionally by state) and the "is a submission in flight" check.
CREATE INDEX provisioning_orders_tenant_state ON provisioning_orders (tenant, state, id DESC);
CREATE INDEX provisioning_orders_tenant ON provisioning_orders (tenant, id DESC);
-- The sweep of submissions whose answer is overdue.
CREATE INDEX provisioning_orders_submitting ON provisioning_orders (answer_by) WHERE state = 'submitting';

-- Every state an order went through, oldest first.
CREATE TABLE provisioning_order_events (
    id         BIGSERIAL   PRIMARY KEY,
    order_ref  BIGINT      NOT NULL REFERENCES provisioning_orders (id) ON DELETE CASCADE,
    state      TEXT        NOT NULL CHECK (state IN ('pending', 'completed', 'failed')),
    message    TEXT        NOT NULL DEFAULT '',
    -- `provision` (the vendor's answer) or `callback`.
    source     TEXT        NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX provisioning_order_events_order ON provisioning_order_events (order_ref, id);

-- Every order callback received, once per order: the first delivery's content, how many times
-- it came, and when it was applied (NULL: held until the order's row gets its order id, at the
-- latest until `hold_until`, when the submissions that could have been its order were due; an
-- expired held callback is deleted, and a later delivery of it is answered FAIL).
CREATE TABLE provisioning_callbacks (
    tenant            TEXT        NOT NULL,
    order_id          TEXT        NOT NULL,
    result            TEXT        NOT NULL CHECK (result IN ('completed', 'failed')),
    message           TEXT        NOT NULL DEFAULT '',
    deliveries        INTEGER     NOT NULL DEFAULT 1,
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at        TIMESTAMPTZ,
    hold_until        TIMESTAMPTZ,
    PRIMARY KEY (tenant, order_id)
);
-- Held callbacks: counted per tenant (they are capped) and expired.
CREATE INDEX provisioning_callbacks_held ON provisioning_callbacks (tenant, hold_until) WHERE applied_at IS NULL;

-- Applies one order callback in a single round trip (its own transaction when called alone).
-- `effect`: 'applied', 'duplicate', 'conflicting' (a duplicate that says otherwise), 'held',
-- 'hold_full' or 'unknown'; when applied, `events_before` is how many events the order had and
-- `changed_at` the moment of the change (its updated_at and its new event's), so that watchers
-- can follow the change without reading the order again. The statements run one after the other, each
-- seeing what committed before it: the advisory lock on (tenant, order id), the one storing the
-- vendor's answer also takes, is taken first, so a callback and its order's answer never miss
-- each other. (One statement with CTEs would read everything as of before the lock was granted.)
CREATE FUNCTION provisioning_apply_callback(
    p_tenant TEXT, p_order_id TEXT, p_state TEXT, p_message TEXT, p_max_held BIGINT,
    OUT effect TEXT, OUT events_before BIGINT, OUT changed_at TIMESTAMPTZ
) LANGUAGE plpgsql AS $$
DECLARE
    v_id    BIGINT;
    v_state TEXT;
    v_until TIMESTAMPTZ;
    v_held  BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant || ' ' || p_order_id, 0));
    SELECT id, state INTO v_id, v_state
      FROM provisioning_orders WHERE tenant = p_tenant AND order_id = p_order_id FOR UPDATE;
    IF FOUND THEN
        -- Every delivery is counted; the first one's content is kept.
        INSERT INTO provisioning_callbacks (tenant, order_id, result, message, applied_at)
        VALUES (p_tenant, p_order_id, p_state, p_message, CASE WHEN v_state = 'pending' THEN clock_timestamp() END)
        ON CONFLICT (tenant, order_id) DO UPDATE
           SET deliveries = provisioning_callbacks.deliveries + 1, last_received_at = clock_timestamp();
        IF v_state = 'pending' THEN
            SELECT count(*) INTO events_before FROM provisioning_order_events WHERE order_ref = v_id;
            -- clock_timestamp(), not now(), and last: updated_at is as close to the commit as can
            -- be (the benchmark measures commit-to-watcher latency from it).
            changed_at := clock_timestamp();
            INSERT INTO provisioning_order_events (order_ref, state, message, source, at)
            VALUES (v_id, p_state, p_message, 'callback', changed_at);
            UPDATE provisioning_orders SET state = p_state, message = p_message, updated_at = changed_at
             WHERE id = v_id;
        END IF;
        effect := CASE WHEN v_state = 'pending' THEN 'applied'
                       WHEN v_state = p_state THEN 'duplicate'
                       ELSE 'conflicting' END;
        RETURN;
    END IF;
    -- Only submissions whose answer is still due can become this order; the latest of them
    -- bounds how long the callback is worth holding.
    SELECT max(answer_by) INTO v_until
      FROM provisioning_orders
     WHERE tenant = p_tenant AND state = 'submitting' AND answer_by > clock_timestamp();
    IF v_until IS NULL THEN
        effect := 'unknown';
        RETURN;
    END IF;
    SELECT count(*) INTO v_held FROM provisioning_callbacks WHERE tenant = p_tenant AND applied_at IS NULL;
    IF v_held >= p_max_held THEN
        effect := 'hold_full';
        RETURN;
    END IF;
    -- A redelivery is counted, keeps the first content, and extends the hold to the newest
    -- submission that could match.
    INSERT INTO provisioning_callbacks (tenant, order_id, result, message, hold_until)
    VALUES (p_tenant, p_order_id, p_state, p_message, v_until)
    ON CONFLICT (tenant, order_id) DO UPDATE
       SET deliveries = provisioning_callbacks.deliveries + 1, last_received_at = clock_timestamp(),
           hold_until = GREATEST(provisioning_callbacks.hold_until, EXCLUDED.hold_until);
    effect := 'held';
END
$$;
