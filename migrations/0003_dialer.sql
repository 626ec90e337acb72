-- DialerService: lead exports, kept so that a repeated export (same tenant and request_id) adds
-- no lead twice and an interrupted one can be resumed, and so that an export's per-lead answer is
-- spooled here rather than held in memory.

-- One row per export. A running export holds a lease it renews; a second stream with the same
-- request_id while the lease holds is refused, and one arriving after it ran out takes over.
CREATE TABLE dialer_exports (
    tenant         TEXT        NOT NULL,
    -- The caller's request_id, or `anonymous:<uuid>` for an export sent without one.
    request_id     TEXT        NOT NULL,
    -- SHA-256 of the export's target: the same request_id with another target is refused.
    target_digest  BYTEA       NOT NULL,
    list_id        TEXT        NOT NULL,
    -- The target list exists at the dialer (created by this export, or checked as active).
    list_ready     BOOLEAN     NOT NULL DEFAULT false,
    lease_until    TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, request_id)
);
CREATE INDEX dialer_exports_expiry ON dialer_exports (expires_at);

-- The outcome of each lead of an export, by its index in the stream.
--   accepted: the dialer took it (lead_id is the dialer's id);
--   rejected: patchbay's checks or the dialer refused it (error says why);
--   unknown:  the batch was sent and no clear answer came back (a timeout, a 5xx other than 503,
--             an unreadable answer): the leads may be in the list; never sent again, so that none
--             can be added twice;
--   failed:   the dialer provably did not take the batch (no connection, HTTP 503 or 429, after
--             every retry); a repeated export sends it again.
CREATE TABLE dialer_export_leads (
    tenant      TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    -- As normalised (digits only): a repeat must send the same lead at the same index.
    phone       TEXT    NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'unknown', 'failed')),
    lead_id     TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, request_id, idx),
    FOREIGN KEY (tenant, request_id) REFERENCES dialer_exports (tenant, request_id) ON DELETE CASCADE
);
