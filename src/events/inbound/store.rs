//! Inbound events in PostgreSQL: each authenticated post is stored before its sender is
//! answered, duplicates take effect once, and an older change never overrides a newer one.
//!
//! One transaction per event, under a row lock on its customer (so two posts about one customer are
//! decided one after the other): look for the same event, compare with what the customer's last
//! event said, apply the action in the same transaction, store the event and the customer's
//! latest state.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// An authenticated, readable post, decided by [`accept`].
pub struct Incoming<'a> {
    pub tenant: &'a str,
    pub trigger: &'a str,
    /// `id:<sender's event id>` or `body:<sha256 of the body>`.
    pub dedupe_key: String,
    /// `None` for a key that is an id (a repeat is a repeat however late).
    pub dedupe_window: Option<Duration>,
    pub customer: &'a str,
    pub sent_at: Option<DateTime<Utc>>,
    /// The customer's status as this event tells it ('' when the trigger maps none).
    pub status: &'a str,
    /// The status before, when the sender tells it.
    pub previous_status: Option<&'a str>,
    /// `when.status_changed`.
    pub only_if_status_changed: bool,
    /// A `when.fields` condition that failed: the event is skipped for this reason.
    pub unmet: Option<String>,
    pub action: &'a str,
    pub body: &'a str,
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Applied (its action's change is committed with it).
    Accepted { id: i64 },
    /// The same event was received before (`id` is the first one's): nothing applied again.
    Duplicate { id: i64 },
    /// Stored, not applied: a condition did not hold.
    Skipped { id: i64, reason: String },
    /// Stored, not applied: the customer has a newer change already.
    Superseded { id: i64, reason: String },
}

impl Verdict {
    pub fn id(&self) -> i64 {
        match self {
            Self::Accepted { id } | Self::Duplicate { id } | Self::Skipped { id, .. } | Self::Superseded { id, .. } => {
                *id
            }
        }
    }

    pub fn state(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Duplicate { .. } => "duplicate",
            Self::Skipped { .. } => "skipped",
            Self::Superseded { .. } => "superseded",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Skipped { reason, .. } | Self::Superseded { reason, .. } => reason,
            _ => "",
        }
    }
}

fn same_status(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Decides `event` and, when it is to be applied, runs `apply` inside its transaction (an error
/// there rolls everything back: nothing stored, nothing applied).
pub async fn accept<T, E: From<sqlx::Error>>(
    pool: &PgPool,
    event: &Incoming<'_>,
    apply: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<(Verdict, Option<T>), E> {
    let mut tx = pool.begin().await?;
    // The customer's row, taken with a row lock (made if it is the first event): posts about one
    // customer are decided one after the other, and each statement after this one sees what the
    // previous holder committed. RETURNING gives its latest committed values.
    let (last_at, last_status): (Option<DateTime<Utc>>, String) = sqlx::query_as(
        "INSERT INTO inbound_customers (tenant, customer) VALUES ($1, $2)
         ON CONFLICT (tenant, customer) DO UPDATE SET updated_at = inbound_customers.updated_at
         RETURNING sent_at, status",
    )
    .bind(event.tenant)
    .bind(event.customer)
    .fetch_one(&mut *tx)
    .await?;
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM inbound_events
          WHERE tenant = $1 AND trigger = $2 AND dedupe_key = $3 AND state <> 'invalid'
            AND ($4::float8 IS NULL OR received_at > clock_timestamp() - make_interval(secs => $4))
          ORDER BY received_at DESC LIMIT 1",
    )
    .bind(event.tenant)
    .bind(event.trigger)
    .bind(&event.dedupe_key)
    .bind(event.dedupe_window.map(|w| w.as_secs_f64()))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = first {
        sqlx::query("UPDATE inbound_events SET duplicates = duplicates + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok((Verdict::Duplicate { id }, None));
    }
    let last_status = Some(last_status);
    let older = matches!((event.sent_at, last_at), (Some(at), Some(newest)) if at < newest);
    let before = event.previous_status.or(last_status.as_deref()).filter(|s| !s.is_empty());
    let (state, reason) = if older {
        let newest = last_at.map(|t| t.to_rfc3339()).unwrap_or_default();
        ("superseded", format!("a newer change of this customer (sent {newest}) was received already"))
    } else if let Some(unmet) = &event.unmet {
        ("skipped", unmet.clone())
    } else if event.only_if_status_changed && before.is_some_and(|b| same_status(b, event.status)) {
        ("skipped", format!("when.status_changed: the status is still `{}`", event.status.trim()))
    } else {
        ("accepted", String::new())
    };
    let applied = if state == "accepted" { Some(apply(&mut tx).await?) } else { None };
    // The event, and (unless it is older) the customer's latest state, in one statement.
    let id: i64 = sqlx::query_scalar(
        "WITH event AS (
             INSERT INTO inbound_events (tenant, trigger, dedupe_key, customer, sent_at, state, action, reason, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id),
         customer AS (
             UPDATE inbound_customers
                SET sent_at = COALESCE($5, sent_at), status = CASE WHEN $10 = '' THEN status ELSE $10 END,
                    updated_at = now()
              WHERE tenant = $1 AND customer = $4 AND NOT $11)
         SELECT id FROM event",
    )
    .bind(event.tenant)
    .bind(event.trigger)
    .bind(&event.dedupe_key)
    .bind(event.customer)
    .bind(event.sent_at)
    .bind(state)
    .bind(event.action)
    .bind(&reason)
    .bind(event.body)
    .bind(event.status)
    .bind(older)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let verdict = match state {
        "accepted" => Verdict::Accepted { id },
        "skipped" => Verdict::Skipped { id, reason },
        _ => Verdict::Superseded { id, reason },
    };
    Ok((verdict, applied))
}

/// Keeps a post that could not be read or applied, with why, for the operator.
pub async fn keep_invalid(
    pool: &PgPool,
    tenant: &str,
    trigger: &str,
    reason: &str,
    body: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO inbound_events (tenant, trigger, dedupe_key, state, reason, body)
         VALUES ($1, $2, '', 'invalid', $3, $4) RETURNING id",
    )
    .bind(tenant)
    .bind(trigger)
    .bind(reason)
    .bind(body)
    .fetch_one(pool)
    .await
}

/// An inbound event as the operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub id: i64,
    pub trigger: String,
    pub customer: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub state: String,
    pub action: String,
    pub reason: String,
    pub duplicates: i32,
    pub body: String,
}

/// A tenant's inbound events, newest first, older than `before` when given.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, trigger, customer, sent_at, received_at, state, action, reason, duplicates, body
           FROM inbound_events
          WHERE tenant = $1 AND ($2::text IS NULL OR state = $2) AND ($3::bigint IS NULL OR id < $3)
          ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(state)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Deletes inbound events older than `age`, at most `limit` a call.
pub async fn prune(pool: &PgPool, age: Duration, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM inbound_events WHERE id IN (
             SELECT id FROM inbound_events WHERE received_at < now() - make_interval(secs => $1) LIMIT $2)",
    )
    .bind(age.as_secs_f64())
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
