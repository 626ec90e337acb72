-- AccountService: the CRM's custom SIP table, and the status follow-up's desired statuses.

-- One row of a customer's custom SIP table, as the CRM shows it: `fields` maps the tenant's
-- custom_sip_table field IDs (as JSON object keys) to text. Rows are matched on the SIP user name.
CREATE TABLE account_sip_rows (
    tenant          TEXT        NOT NULL,
    account_number  TEXT        NOT NULL,
    sip_username    TEXT        NOT NULL,
    fields          JSONB       NOT NULL,
    synced_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, account_number, sip_username)
);

-- The latest desired vendor status of each customer. Written before delivery, so a change is never
-- lost; `generation` grows with every new desire, so a delivery of an older one cannot mark a newer
-- one applied. Deliveries are claimed with a lease (`lease_until`) through FOR UPDATE SKIP LOCKED, so
-- several replicas never deliver one customer's change at once.
CREATE TABLE account_status_intents (
    tenant           TEXT        NOT NULL,
    account_number   TEXT        NOT NULL,
    desired          TEXT        NOT NULL CHECK (desired IN ('ACTIVE', 'DISABLED')),
    generation       BIGINT      NOT NULL,
    state            TEXT        NOT NULL CHECK (state IN ('pending', 'applied', 'rejected')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until      TIMESTAMPTZ,
    last_error       TEXT        NOT NULL DEFAULT '',
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at       TIMESTAMPTZ,
    PRIMARY KEY (tenant, account_number)
);
CREATE INDEX account_status_intents_due ON account_status_intents (next_attempt_at) WHERE state = 'pending';
