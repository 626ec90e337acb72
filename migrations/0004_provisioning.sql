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
