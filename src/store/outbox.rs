//! The outbox of outbound webhooks: one row per event and endpoint, written by the area in the
//! transaction of the change it reports ([`enqueue`]), and delivered by whichever replica claims
//! it first (`FOR UPDATE SKIP LOCKED` under a lease: one replica at a time per delivery).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What happened, as a webhook's `type`. Tenant files subscribe to these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A phone-number order moved to another state (its submission's answer, a callback, a sweep).
    OrderStateChanged,
    /// A customer's desired status reached the vendor.
    CustomerStatusApplied,
    /// The vendor refused a customer's desired status for good, or it could not be delivered for 24 h.
    CustomerStatusRejected,
    /// An ExportLeads run ended (every lead settled, or the run stopped).
    ExportFinished,
    /// SyncSipLines changed the SIP table: the lines added, updated and deleted.
    SipLinesSynced,
    /// A vendor refused the tenant's credentials.
    CredentialsRefused,
    /// The tenant's file changed and could not be loaded: the previous version is still served.
    ReloadFailed,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        Self::OrderStateChanged,
        Self::CustomerStatusApplied,
        Self::CustomerStatusRejected,
        Self::ExportFinished,
        Self::SipLinesSynced,
        Self::CredentialsRefused,
        Self::ReloadFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderStateChanged => "order.state_changed",
            Self::CustomerStatusApplied => "customer_status.applied",
            Self::CustomerStatusRejected => "customer_status.rejected",
            Self::ExportFinished => "export.finished",
            Self::SipLinesSynced => "sip_lines.synced",
            Self::CredentialsRefused => "tenant.credentials_refused",
            Self::ReloadFailed => "tenant.reload_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One endpoint's copy of an event: its name in the tenant file and the body it is sent.
pub struct EndpointCopy<'a> {
    pub endpoint: &'a str,
    pub payload: String,
}

/// Stores an event for each of `copies`' endpoints, inside the caller's transaction. The same
/// `event_id` stored twice for an endpoint (two replicas reporting one thing) is stored once.
pub async fn enqueue(
    conn: &mut PgConnection,
    event_id: Uuid,
    tenant: &str,
    event_type: EventType,
    copies: &[EndpointCopy<'_>],
) -> Result<(), sqlx::Error> {
    if copies.is_empty() {
        return Ok(());
    }
    let endpoints: Vec<&str> = copies.iter().map(|c| c.endpoint).collect();
    let payloads: Vec<&str> = copies.iter().map(|c| c.payload.as_str()).collect();
    sqlx::query(
        "INSERT INTO outbound_deliveries (event_id, tenant, endpoint, event_type, payload)
         SELECT $1, $2, e, $3, p FROM unnest($4::text[], $5::text[]) AS u(e, p)
         ON CONFLICT (event_id, endpoint) DO NOTHING",
    )
    .bind(event_id)
    .bind(tenant)
    .bind(event_type.as_str())
    .bind(&endpoints)
    .bind(&payloads)
    .execute(conn)
    .await?;
    Ok(())
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub event_id: Uuid,
    pub tenant: String,
    pub endpoint: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries for `lease` (oldest first), skipping rows another
/// replica is claiming; a lease of a process that died is free at once.
pub async fn claim_due(pool: &PgPool, limit: i64, lease: Duration, owner: i64) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE outbound_deliveries d SET lease_until = now() + make_interval(secs => $2), lease_owner = $3
          WHERE d.id IN (
                SELECT id FROM outbound_deliveries o
                 WHERE o.state = 'pending' AND o.next_attempt_at <= now()
                   AND (o.lease_until IS NULL OR o.lease_until < now()
                        OR (o.lease_owner <> $3 AND NOT patchbay_instance_alive(o.lease_owner)))
                 ORDER BY o.next_attempt_at, o.id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
          RETURNING d.id, d.event_id, d.tenant, d.endpoint, d.event_type, d.payload, d.attempts, d.created_at",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .bind(owner)
    .fetch_all(pool)
    .await
}

/// Records delivered attempts (`(id, HTTP status)`) in one statement.
pub async fn delivered(pool: &PgPool, done: &[(i64, u16)], owner: i64) -> Result<(), sqlx::Error> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = done.iter().map(|d| d.0).collect();
    let statuses: Vec<i32> = done.iter().map(|d| i32::from(d.1)).collect();
    sqlx::query(
        "UPDATE outbound_deliveries d
            SET state = 'delivered', attempts = d.attempts + 1, delivered_at = clock_timestamp(),
                last_status = u.status, last_error = '', lease_until = NULL, lease_owner = NULL
           FROM unnest($1::bigint[], $2::int[]) AS u(id, status)
          WHERE d.id = u.id AND d.lease_owner = $3",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt: due again after `retry_in`, or `failed` for good when `None`.
pub async fn attempt_failed(
    pool: &PgPool,
    id: i64,
    owner: i64,
    retry_in: Option<Duration>,
    status: Option<u16>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbound_deliveries
            SET attempts = attempts + 1, last_error = $3, last_status = $4,
                state = CASE WHEN $5::float8 IS NULL THEN 'failed' ELSE 'pending' END,
                next_attempt_at = now() + make_interval(secs => COALESCE($5::float8, 0)),
                lease_until = NULL, lease_owner = NULL
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(error)
    .bind(status.map(i32::from))
    .bind(retry_in.map(|d| d.as_secs_f64()))
    .execute(pool)
    .await?;
    Ok(())
}

/// A delivery as the operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub event_id: Uuid,
    pub endpoint: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: String,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A tenant's deliveries, newest first, after (older than) the delivery `before` when given.
pub async fn deliveries(
    pool: &PgPool,
    tenant: &str,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_id, endpoint, event_type, state, attempts, last_error, last_status, created_at,
                next_attempt_at, delivered_at
           FROM outbound_deliveries
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

/// Makes a tenant's delivery due now again, whatever its state (an operator's re-send); its
/// attempts start over. `None`: no such delivery of that tenant.
pub async fn resend(pool: &PgPool, tenant: &str, id: i64) -> Result<Option<Delivery>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE outbound_deliveries
            SET state = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL,
                lease_until = NULL, lease_owner = NULL
          WHERE tenant = $1 AND id = $2
          RETURNING id, event_id, endpoint, event_type, state, attempts, last_error, last_status, created_at,
                    next_attempt_at, delivered_at",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Deletes finished deliveries older than `age` (at most `limit` rows a call): the outbox keeps
/// what is pending and a recent history, not everything ever sent.
pub async fn prune(pool: &PgPool, age: Duration, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM outbound_deliveries WHERE id IN (
             SELECT id FROM outbound_deliveries
              WHERE state <> 'pending' AND created_at < now() - make_interval(secs => $1) LIMIT $2)",
    )
    .bind(age.as_secs_f64())
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_read_back() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("order.changed"), None);
    }
}
