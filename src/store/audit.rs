//! The audit trail: one row per mutating call (who, what, through which vendor, how it ended).
//! Rows never hold request payloads, so they never hold secrets.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One audit row to write.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub tenant: &'a str,
    /// `token:<hash prefix>`, never the token.
    pub caller: &'a str,
    /// Full gRPC method, e.g. `patchbay.v1.AccountService/CreateAccount`.
    pub method: &'a str,
    pub provider: &'a str,
    /// `OK` or the gRPC code name.
    pub outcome: &'a str,
    /// The ErrorInfo reason of a failed call.
    pub reason: &'a str,
    pub latency_ms: i64,
    pub request_id: &'a str,
}

/// A stored audit row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub tenant: String,
    pub caller: String,
    pub method: String,
    pub provider: String,
    pub outcome: String,
    pub reason: String,
    pub latency_ms: i64,
    pub request_id: String,
}

pub async fn record(pool: &PgPool, e: &NewEvent<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (tenant, caller, method, provider, outcome, reason, latency_ms, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.tenant)
    .bind(e.caller)
    .bind(e.method)
    .bind(e.provider)
    .bind(e.outcome)
    .bind(e.reason)
    .bind(e.latency_ms)
    .bind(e.request_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// A page of events, newest first: those with `id < before` (all when `None`), at most `limit`.
pub async fn page(
    pool: &PgPool,
    tenant: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, at, tenant, caller, method, provider, outcome, reason, latency_ms, request_id
           FROM audit_events
          WHERE ($1::text IS NULL OR tenant = $1) AND ($2::bigint IS NULL OR id < $2)
          ORDER BY id DESC
          LIMIT $3",
    )
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}
