-- Stock VICIdial checks each exported lead with duplicate_check=DUPLIST: a lead whose phone is
-- already in the list is answered with the lead that holds it. Such a lead is `duplicate`, with
-- that lead's id: not an error, the number is in the list once.
ALTER TABLE dialer_export_leads DROP CONSTRAINT dialer_export_leads_outcome_check;
ALTER TABLE dialer_export_leads ADD CONSTRAINT dialer_export_leads_outcome_check
    CHECK (outcome IN ('accepted', 'rejected', 'unknown', 'failed', 'sending', 'duplicate'));

-- The lists patchbay created or exported to, per tenant. Stock VICIdial cannot list its lists,
-- so ListActiveLists looks these up one by one (list_info). Only authenticated callers add
-- rows (CreateList, ExportLeads), and a read takes the most recently used ones (a bounded number).
CREATE TABLE dialer_known_lists (
    tenant    TEXT        NOT NULL,
    list_id   TEXT        NOT NULL,
    last_used TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, list_id)
);
CREATE INDEX dialer_known_lists_recent ON dialer_known_lists (tenant, last_used DESC);
