//! The export tables (migrations/0003_dialer.sql, 0006): one row per export, holding its list's
//! state, and one row per lead outcome. An export claims its request_id, and holds its lease,
//! through the platform's idempotency keys ([`crate::store::idempotency`]); its rows hang off
//! that key and go when it is released or expires. They make a repeated export (same tenant and
//! request_id) add no lead twice, let an interrupted one resume, and spool an export's answer
//! out of memory.

use std::{collections::HashMap, time::Duration};

use futures::TryStreamExt;
use sqlx::PgPool;

use crate::store::idempotency::{self, Claim, Key};

/// The idempotency-key method of a lead export (the gRPC method; migrations/0006 names it too).
pub const EXPORT_METHOD: &str = "patchbay.v1.DialerService/ExportLeads";

/// How long an export holds its request_id without renewing the lease.
pub const LEASE: Duration = Duration::from_secs(60);

/// One export's key.
#[derive(Debug, Clone, Copy)]
pub struct ExportKey<'a> {
    pub tenant: &'a str,
    pub request_id: &'a str,
}

impl<'a> ExportKey<'a> {
    fn idempotency(self) -> Key<'a> {
        Key { tenant: self.tenant, method: EXPORT_METHOD, request_id: self.request_id }
    }
}

/// What starting an export found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// A new export: nothing recorded.
    Fresh,
    /// The same export again (or resumed): recorded outcomes stand; `list_ready` if its list was made.
    Resume { list_ready: bool },
    /// Another stream with this request_id is running.
    InProgress,
    /// This request_id was used for an export to another target.
    Mismatch,
}

/// How a lead's export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected,
    /// Sent, answer lost: never sent again.
    Unknown,
    /// Not taken by the dialer: a repeated export sends it again.
    Failed,
    /// Recorded just before its batch goes to the dialer, replaced by the answer. Found later
    /// (the process died mid-call), it means sent without an answer: never sent again (except
    /// where the vendor's duplicate check makes a resend safe).
    Sending,
    /// Its phone was already in the list: the lead id is the lead that holds it.
    Duplicate,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
            Self::Failed => "failed",
            Self::Sending => "sending",
            Self::Duplicate => "duplicate",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            "unknown" => Self::Unknown,
            "sending" => Self::Sending,
            "duplicate" => Self::Duplicate,
            _ => Self::Failed,
        }
    }

    /// Whether a repeat keeps this outcome rather than sending the lead again. `resend_safe`:
    /// the vendor's duplicate check makes resending a lead sent without an answer safe.
    pub fn settled(self, resend_safe: bool) -> bool {
        match self {
            Self::Failed => false,
            Self::Unknown | Self::Sending => !resend_safe,
            Self::Accepted | Self::Rejected | Self::Duplicate => true,
        }
    }

    /// Whether a lead with this outcome was sent before, its answer lost.
    pub fn maybe_sent(self) -> bool {
        matches!(self, Self::Unknown | Self::Sending)
    }
}

/// One lead's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRow {
    pub idx: i32,
    pub phone: String,
    pub outcome: Outcome,
    pub lead_id: String,
    pub error: String,
}

/// Starts (or resumes) an export: claims its request_id through the shared idempotency keys,
/// with the export's lease, then finds or makes its row.
pub async fn begin(
    pool: &PgPool,
    key: ExportKey<'_>,
    target_digest: &[u8],
    list_id: &str,
    owner: i64,
) -> Result<Begin, sqlx::Error> {
    match idempotency::claim_leased(pool, key.idempotency(), target_digest, LEASE, owner).await? {
        Claim::InProgress => return Ok(Begin::InProgress),
        Claim::Mismatch => return Ok(Begin::Mismatch),
        // An export never completes its key (a repeat must be able to resend failed leads), so
        // `Done` cannot be found; were it, resuming from the records is the safe reading.
        Claim::Owned | Claim::Done(_) => {}
    }
    // A key taken over after it expired was born again: the export kept from its old life goes.
    sqlx::query(
        "DELETE FROM dialer_exports e USING idempotency_keys k
          WHERE e.tenant = $1 AND e.request_id = $3
            AND k.tenant = e.tenant AND k.method = $2 AND k.request_id = e.request_id
            AND e.created_at < k.created_at",
    )
    .bind(key.tenant)
    .bind(EXPORT_METHOD)
    .bind(key.request_id)
    .execute(pool)
    .await?;
    let (inserted, list_ready): (bool, bool) = sqlx::query_as(
        "INSERT INTO dialer_exports (tenant, method, request_id, list_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, request_id) DO UPDATE SET list_id = dialer_exports.list_id
         RETURNING (xmax = 0), list_ready",
    )
    .bind(key.tenant)
    .bind(EXPORT_METHOD)
    .bind(key.request_id)
    .bind(list_id)
    .fetch_one(pool)
    .await?;
    Ok(if inserted { Begin::Fresh } else { Begin::Resume { list_ready } })
}
/// The export's list exists at the dialer.
pub async fn mark_list_ready(pool: &PgPool, key: ExportKey<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dialer_exports SET list_ready = true WHERE tenant = $1 AND request_id = $2")
        .bind(key.tenant)
        .bind(key.request_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Extends the lease of a running export.
pub async fn renew_lease(pool: &PgPool, key: ExportKey<'_>) -> Result<(), sqlx::Error> {
    idempotency::renew(pool, key.idempotency(), LEASE).await
}

/// Ends the lease: the same export may resume at once; its records stand.
pub async fn release(pool: &PgPool, key: ExportKey<'_>) -> Result<(), sqlx::Error> {
    idempotency::end_lease(pool, key.idempotency()).await
}

/// Forgets an export and its outcomes: its key goes, and its rows with it.
pub async fn delete(pool: &PgPool, key: ExportKey<'_>) -> Result<(), sqlx::Error> {
    idempotency::release(pool, key.idempotency()).await
}

/// Outcomes already recorded for the leads `from..=to`, by index: (phone, outcome).
pub async fn recorded(
    pool: &PgPool,
    key: ExportKey<'_>,
    from: i32,
    to: i32,
) -> Result<HashMap<i32, (String, Outcome)>, sqlx::Error> {
    let rows: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT idx, phone, outcome FROM dialer_export_leads
          WHERE tenant = $1 AND request_id = $2 AND idx BETWEEN $3 AND $4",
    )
    .bind(key.tenant)
    .bind(key.request_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(idx, phone, outcome)| (idx, (phone, Outcome::parse(&outcome)))).collect())
}

/// Records a batch as `sending`, just before it goes to the dialer. `durable`: the mark must
/// survive a crash of PostgreSQL itself (it is what keeps a batch of unknown outcome from being
/// sent twice). Where a resend is safe anyway (the vendor's duplicate check), the mark only lets
/// a resume read a found copy as the lead's own, so it is committed without waiting for the
/// disk (`synchronous_commit = off`): a crash of patchbay keeps it, and it costs one WAL flush
/// less per lead.
pub async fn record_sending(
    pool: &PgPool,
    key: ExportKey<'_>,
    rows: &[LeadRow],
    durable: bool,
) -> Result<(), sqlx::Error> {
    if durable {
        return record(pool, key, rows).await;
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    record(&mut *tx, key, rows).await?;
    tx.commit().await
}

/// Records outcomes in one statement. A settled outcome is never overwritten; a `failed` one is
/// replaced by the outcome of its retry, a `sending` one by its batch's answer, an `unknown` one
/// by the answer of its resend (only ever resent where that is safe).
pub async fn record<'e>(
    db: impl sqlx::PgExecutor<'e>,
    key: ExportKey<'_>,
    rows: &[LeadRow],
) -> Result<(), sqlx::Error> {
    let mut idx = Vec::with_capacity(rows.len());
    let mut phone = Vec::with_capacity(rows.len());
    let mut outcome = Vec::with_capacity(rows.len());
    let mut lead_id = Vec::with_capacity(rows.len());
    let mut error = Vec::with_capacity(rows.len());
    for r in rows {
        idx.push(r.idx);
        phone.push(r.phone.as_str());
        outcome.push(r.outcome.as_str());
        lead_id.push(r.lead_id.as_str());
        error.push(r.error.as_str());
    }
    sqlx::query(
        "INSERT INTO dialer_export_leads (tenant, request_id, idx, phone, outcome, lead_id, error)
         SELECT $1, $2, * FROM UNNEST($3::int4[], $4::text[], $5::text[], $6::text[], $7::text[])
         ON CONFLICT (tenant, request_id, idx) DO UPDATE
            SET phone = EXCLUDED.phone, outcome = EXCLUDED.outcome, lead_id = EXCLUDED.lead_id, error = EXCLUDED.error
          WHERE dialer_export_leads.outcome IN ('failed', 'sending', 'unknown')",
    )
    .bind(key.tenant)
    .bind(key.request_id)
    .bind(&idx)
    .bind(&phone)
    .bind(&outcome)
    .bind(&lead_id)
    .bind(&error)
    .execute(db)
    .await?;
    Ok(())
}

/// Calls `each` with the outcomes of leads `0..count`, in index order, streamed from the
/// database (never all rows buffered twice).
pub async fn each_outcome(
    pool: &PgPool,
    key: ExportKey<'_>,
    count: i32,
    mut each: impl FnMut(LeadRow),
) -> Result<(), sqlx::Error> {
    let mut rows = sqlx::query_as::<_, (i32, String, String, String, String)>(
        "SELECT idx, phone, outcome, lead_id, error FROM dialer_export_leads
          WHERE tenant = $1 AND request_id = $2 AND idx < $3 ORDER BY idx",
    )
    .bind(key.tenant)
    .bind(key.request_id)
    .bind(count)
    .fetch(pool);
    while let Some((idx, phone, outcome, lead_id, error)) = rows.try_next().await? {
        each(LeadRow { idx, phone, outcome: Outcome::parse(&outcome), lead_id, error });
    }
    Ok(())
}

/// Lists a read of the known lists returns at most (the most recently used first).
pub const MAX_KNOWN_LISTS: i64 = 500;

/// Remembers that patchbay created or exported to `list_id` for `tenant`.
pub async fn remember_list(pool: &PgPool, tenant: &str, list_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dialer_known_lists (tenant, list_id) VALUES ($1, $2)
         ON CONFLICT (tenant, list_id) DO UPDATE SET last_used = now()",
    )
    .bind(tenant)
    .bind(list_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The lists patchbay created or exported to for `tenant`, most recently used first (at most
/// [`MAX_KNOWN_LISTS`]).
pub async fn known_lists(pool: &PgPool, tenant: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT list_id FROM dialer_known_lists WHERE tenant = $1 ORDER BY last_used DESC, list_id LIMIT $2",
    )
    .bind(tenant)
    .bind(MAX_KNOWN_LISTS)
    .fetch_all(pool)
    .await
}
