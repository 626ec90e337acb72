-- AccountService: SIP-table refreshes asked for by the CRM's inbound triggers (action
-- sync_sip_lines). One row per customer, its latest request: a refresh reads the vendor's lines as
-- they are when it runs, so requests that arrive while one is pending collapse into it, and one
-- that arrives while a refresh runs (which may have read the vendor before the change) makes it run
-- again (`generation`). Claimed, leased and retried through vendor outages exactly as the desired
-- statuses of account_status_intents are (the same statements serve both tables).
CREATE TABLE account_sip_refreshes (
    tenant           TEXT        NOT NULL,
    account_number   TEXT        NOT NULL,
    mode             TEXT        NOT NULL CHECK (mode IN ('FULL', 'ADD_ONLY')),
    generation       BIGINT      NOT NULL,
    state            TEXT        NOT NULL CHECK (state IN ('pending', 'applied', 'rejected')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until      TIMESTAMPTZ,
    lease_token      UUID,
    lease_owner      BIGINT,
    last_error       TEXT        NOT NULL DEFAULT '',
    desired_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at       TIMESTAMPTZ,
    PRIMARY KEY (tenant, account_number)
);
CREATE INDEX account_sip_refreshes_due ON account_sip_refreshes (next_attempt_at) WHERE state = 'pending';
