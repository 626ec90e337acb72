-- Platform tables: idempotency keys and the audit trail.

-- One row per (tenant, method, request_id): the first call owns it while in progress, then the
-- stored response is replayed to retries for 24 hours.
CREATE TABLE idempotency_keys (
    tenant        TEXT        NOT NULL,
    method        TEXT        NOT NULL,
    request_id    TEXT        NOT NULL,
    request_hash  BYTEA       NOT NULL,
    state         TEXT        NOT NULL CHECK (state IN ('in_progress', 'done')),
    response      BYTEA,
    -- An in-progress row whose lease has run out belongs to a call that died: it may be taken over.
    lease_until   TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, method, request_id)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Every mutating call: who, what, through which vendor, how it ended. No request payloads, so
-- no secrets.
CREATE TABLE audit_events (
    id          BIGSERIAL   PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    tenant      TEXT        NOT NULL,
    caller      TEXT        NOT NULL,
    method      TEXT        NOT NULL,
    provider    TEXT        NOT NULL DEFAULT '',
    outcome     TEXT        NOT NULL,
    reason      TEXT        NOT NULL DEFAULT '',
    latency_ms  BIGINT      NOT NULL,
    request_id  TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_tenant ON audit_events (tenant, id DESC);
CREATE INDEX audit_events_method ON audit_events (method, id DESC);
