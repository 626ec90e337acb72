-- Lead exports claim their request_id through the shared idempotency keys (one primitive for
-- claim, mismatch, lease and release; see src/store/idempotency.rs). An export's rows live as
-- long as its key: purging or releasing the key removes them.

ALTER TABLE dialer_exports
    ADD COLUMN method TEXT NOT NULL DEFAULT 'patchbay.v1.DialerService/ExportLeads';

-- Exports recorded before this migration keep their claim, lease and expiry.
INSERT INTO idempotency_keys (tenant, method, request_id, request_hash, state, lease_until, expires_at, created_at)
SELECT tenant, method, request_id, target_digest, 'in_progress', lease_until, expires_at, created_at
  FROM dialer_exports
ON CONFLICT (tenant, method, request_id) DO NOTHING;

ALTER TABLE dialer_exports
    ADD FOREIGN KEY (tenant, method, request_id)
        REFERENCES idempotency_keys (tenant, method, request_id) ON DELETE CASCADE,
    DROP COLUMN target_digest,
    DROP COLUMN lease_until,
    DROP COLUMN expires_at;
