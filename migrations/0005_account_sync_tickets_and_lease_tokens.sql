-- AccountService, second step: syncs that hold no database connection while Alianza answers, and
-- status deliveries that only their current lease holder can finish.

-- SyncSipLines reads the vendor first, holding nothing, then writes in a short locked transaction.
-- A ticket taken before the vendor read orders the writers of one customer's SIP table: a sync
-- whose ticket is older than the last writer's read an older vendor state (or one from before the
-- account was deleted) and must not write it. DeleteAccount takes its ticket after the vendor
-- deleted the account, so no sync that saw the account can write its rows back.
CREATE SEQUENCE account_sip_ticket;

-- The ticket of the last sync or delete that wrote each customer's SIP table. Kept after a delete:
-- it is what stops an older sync from resurrecting the rows.
CREATE TABLE account_sip_tables (
    tenant          TEXT        NOT NULL,
    account_number  TEXT        NOT NULL,
    ticket          BIGINT      NOT NULL,
    written_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, account_number)
);

-- `lease_token` names the holder of `lease_until`: only a call presenting it may finish or release
-- the delivery, so a holder whose lease ran out cannot overwrite the work of the next one.
-- `desired_at` is when the current desire was recorded: a desire that cannot be delivered at all
-- (its tenant's trigger is gone) is given up after a while instead of being retried forever.
ALTER TABLE account_status_intents
    ADD COLUMN lease_token UUID,
    ADD COLUMN desired_at  TIMESTAMPTZ NOT NULL DEFAULT now();
