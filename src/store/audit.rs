//! The audit trail: one row per mutating call (who, what, through which vendor, how it ended).
//! Rows never hold request payloads, so they never hold secrets.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

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

/// Audit rows kept while the database cannot take them, at most (a day of a busy tenant's
/// mutations during an outage is far fewer); past it the row goes to the log instead.
pub const MAX_BACKLOG: usize = 10_000;

/// An audit row that could not be written when its call ended, with the time it ended.
#[derive(Debug, Clone)]
struct Pending {
    at: DateTime<Utc>,
    tenant: String,
    caller: String,
    method: String,
    provider: String,
    outcome: String,
    reason: String,
    latency_ms: i64,
    request_id: String,
}

/// Audit rows waiting for the database, oldest first: a change the vendor made never loses its
/// row to an outage. Written again by a worker ([`Backlog::flush`]); kept in memory, so bounded.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<Mutex<VecDeque<Pending>>>);

impl Backlog {
    /// Keeps `e` (which ended at `at`) for a later write. `false` when the backlog is full: the
    /// caller logs the row instead.
    pub fn keep(&self, e: &NewEvent<'_>, at: DateTime<Utc>) -> bool {
        let mut rows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if rows.len() >= MAX_BACKLOG {
            return false;
        }
        rows.push_back(Pending {
            at,
            tenant: e.tenant.to_owned(),
            caller: e.caller.to_owned(),
            method: e.method.to_owned(),
            provider: e.provider.to_owned(),
            outcome: e.outcome.to_owned(),
            reason: e.reason.to_owned(),
            latency_ms: e.latency_ms,
            request_id: e.request_id.to_owned(),
        });
        true
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the kept rows, oldest first, with the time their calls ended; stops at the first
    /// failure (the database is still away) and keeps the rest. Returns how many were written.
    pub async fn flush(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let mut written = 0;
        loop {
            let Some(row) = self.0.lock().unwrap_or_else(|p| p.into_inner()).front().cloned() else {
                return Ok(written);
            };
            sqlx::query(
                "INSERT INTO audit_events (at, tenant, caller, method, provider, outcome, reason, latency_ms, request_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(row.at)
            .bind(&row.tenant)
            .bind(&row.caller)
            .bind(&row.method)
            .bind(&row.provider)
            .bind(&row.outcome)
            .bind(&row.reason)
            .bind(row.latency_ms)
            .bind(&row.request_id)
            .execute(pool)
            .await?;
            self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            written += 1;
        }
    }
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

#[cfg(test)]
mod backlog_tests {
    use super::*;

    #[test]
    fn the_backlog_keeps_rows_up_to_its_bound_and_refuses_the_next() {
        let backlog = Backlog::default();
        let e = NewEvent {
            tenant: "acme",
            caller: "token:abcd",
            method: "patchbay.v1.DialerService/CreateAgent",
            provider: "elision",
            outcome: "OK",
            reason: "",
            latency_ms: 3,
            request_id: "",
        };
        for _ in 0..MAX_BACKLOG {
            assert!(backlog.keep(&e, Utc::now()));
        }
        assert!(!backlog.keep(&e, Utc::now()), "bounded: an outage cannot grow memory without limit");
        assert_eq!(backlog.len(), MAX_BACKLOG);
    }
}
