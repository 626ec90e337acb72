-- A lease held by a process that no longer exists is taken over at once, not when it runs out.
-- Each server process holds a session-level advisory lock on its own random instance key for as
-- long as it lives (src/store/instance.rs); PostgreSQL drops the lock the moment the process's
-- connection goes (kill -9, a crash, a lost host). A claim records its owner's key, and another
-- process may take an in-progress key over when its owner no longer holds that lock.

ALTER TABLE idempotency_keys ADD COLUMN owner BIGINT;
ALTER TABLE account_status_intents ADD COLUMN lease_owner BIGINT;

-- Whether the process with this instance key is alive: it holds its advisory lock (the one-key
-- form, pg_advisory_lock(bigint): classid = high 32 bits, objid = low 32 bits, objsubid = 1).
CREATE FUNCTION patchbay_instance_alive(instance BIGINT) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND objsubid = 1
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND classid = ((instance >> 32) & 4294967295)::oid
           AND objid = (instance & 4294967295)::oid
    )
$$;

-- A lead batch is recorded as `sending` before it goes to the dialer; its answer replaces that.
-- Found after a crash, `sending` means sent without an answer: the leads may be in the list, so
-- the export never sends them again (outcome unknown).
ALTER TABLE dialer_export_leads DROP CONSTRAINT dialer_export_leads_outcome_check;
ALTER TABLE dialer_export_leads ADD CONSTRAINT dialer_export_leads_outcome_check
    CHECK (outcome IN ('accepted', 'rejected', 'unknown', 'failed', 'sending'));
