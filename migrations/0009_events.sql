-- Events in and out (events.inbound and events.outbound of a tenant file).

-- Every authenticated post to an inbound trigger: stored before the sender is answered 2xx.
-- `dedupe_key` is the sender's event id (`id:<id>`) or, without one, the body's digest
-- (`body:<sha256>`); a duplicate adds to `duplicates` of the first, it is not stored again.
-- Bodies that could not be read are kept (`invalid`) for the operator, with the reason.
CREATE TABLE inbound_events (
    id          BIGSERIAL   PRIMARY KEY,
    tenant      TEXT        NOT NULL,
    trigger     TEXT        NOT NULL,
    dedupe_key  TEXT        NOT NULL,
    -- The customer's account number, as the tenant's account_number_field finds it ('' when unread).
    customer    TEXT        NOT NULL DEFAULT '',
    -- The sender's own timestamp of the change, when the trigger maps one.
    sent_at     TIMESTAMPTZ,
    received_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    state       TEXT        NOT NULL
        CHECK (state IN ('accepted', 'skipped', 'superseded', 'invalid')),
    action      TEXT        NOT NULL DEFAULT '',
    reason      TEXT        NOT NULL DEFAULT '',
    duplicates  INTEGER     NOT NULL DEFAULT 0,
    body        TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX inbound_events_dedupe ON inbound_events (tenant, trigger, dedupe_key, received_at DESC)
    WHERE state <> 'invalid';
CREATE INDEX inbound_events_by_tenant ON inbound_events (tenant, id DESC);
CREATE INDEX inbound_events_age ON inbound_events (received_at);

-- What inbound triggers last told patchbay of each customer: an older change (by the sender's
-- timestamp) never overrides a newer one, and `when.status_changed` compares with `status`.
CREATE TABLE inbound_customers (
    tenant     TEXT        NOT NULL,
    customer   TEXT        NOT NULL,
    sent_at    TIMESTAMPTZ,
    status     TEXT        NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, customer)
);

-- The outbox: one row per event and endpoint, written in the transaction of the change it
-- reports. `event_id` is the Standard Webhooks `webhook-id` (the same for every endpoint and
-- every retry, so receivers dedupe); `payload` is the body sent, signed at each attempt.
CREATE TABLE outbound_deliveries (
    id              BIGSERIAL   PRIMARY KEY,
    event_id        UUID        NOT NULL,
    tenant          TEXT        NOT NULL,
    endpoint        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    state           TEXT        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT        NOT NULL DEFAULT '',
    last_status     INTEGER,
    delivered_at    TIMESTAMPTZ,
    lease_until     TIMESTAMPTZ,
    lease_owner     BIGINT,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX outbound_deliveries_due ON outbound_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbound_deliveries_by_tenant ON outbound_deliveries (tenant, id DESC);
CREATE INDEX outbound_deliveries_age ON outbound_deliveries (created_at) WHERE state <> 'pending';
