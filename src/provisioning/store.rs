//! Orders and their history in PostgreSQL, and the inbox of vendor callbacks.
//!
//! An order's row is written *before* the vendor is called (state `submitting`, keyed by the
//! tenant and the request_id), so that:
//! - a retried order never reaches the vendor twice: the request_id is claimed here first, and a
//!   submission whose answer never came is kept as `unknown` rather than sent again;
//! - a callback that arrives before the vendor's WAIT answer was stored is not lost: while a
//!   tenant has a submission in flight, an unmatched callback is kept in the inbox and applied
//!   when the order's row gets its order id.
//!
//! A submission is in flight until its `answer_by` (the tenant's vendor timeout plus a margin).
//! One still `submitting` after that belongs to a call that ended without storing an answer (its
//! process stopped): [`sweep`] turns it `unknown`, and it no longer makes unmatched callbacks
//! wait; held callbacks expire once every submission that could have been their order was due.
//!
//! Both writers of an order (storing the vendor's answer, applying a callback) take a
//! transaction-scoped advisory lock on (tenant, order id), so one always sees the other's
//! committed work. Every change is announced with `NOTIFY` once committed (see [`announce`] for
//! why not inside the change's transaction), which WatchOrder clients on every replica hear.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::provider::{OrderOutcome, OrderState, VendorOrder};
use crate::{
    platform::events::{self, Event, EventType},
    registry::Tenant,
};

/// The NOTIFY channel; the payload is an [`Announcement`] as JSON.
pub const CHANNEL: &str = "patchbay_provisioning_orders";

/// Held callbacks a tenant may have at once; beyond that a callback is answered "try again".
pub const MAX_HELD_CALLBACKS: i64 = 1000;

/// Where a state change came from.
pub const SOURCE_PROVISION: &str = "provision";
pub const SOURCE_CALLBACK: &str = "callback";

/// A stored order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// Position in the tenant's list (newest is highest).
    pub seq: i64,
    pub order_id: String,
    pub state: OrderState,
    pub company_id: String,
    pub numbers: Vec<String>,
    pub message: String,
    /// Oldest first.
    pub history: Vec<OrderEvent>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One state an order went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub state: OrderState,
    pub message: String,
    pub source: String,
    pub at: DateTime<Utc>,
}

/// What claiming a request_id found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// Ours to submit: the row's id.
    New(i64),
    /// This request already placed this order.
    Existing(Box<StoredOrder>),
    /// This request was submitted before and its outcome is unknown (no answer came, or the
    /// process died while waiting): it must not be sent again.
    Unknown { message: String },
    /// This request is being submitted right now (by another call), its answer not yet due.
    InFlight,
    /// The request_id was used for another request.
    Mismatch,
}

/// A committed change of an order, as announced to every replica's watch hub (the `NOTIFY`
/// payload, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Announcement {
    pub tenant: String,
    pub order_id: String,
    /// The change itself when it is one new event (a callback's), so that watchers need not read
    /// the order again; without it (or when it does not follow what a watcher saw), they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<OrderChange>,
}

/// One new event of a pending order: its new state, message and time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderChange {
    /// How many events the order had before this one.
    pub events_before: usize,
    pub state: String,
    pub message: String,
    pub source: String,
    pub at: DateTime<Utc>,
}

impl OrderChange {
    /// `order` with this change, if it is the change that follows `order` (else read it again).
    pub fn apply(&self, order: &StoredOrder) -> Option<StoredOrder> {
        let state = OrderState::parse(&self.state)?;
        if order.state.is_final() || order.history.len() != self.events_before {
            return None;
        }
        let mut next = order.clone();
        next.state = state;
        next.message = self.message.clone();
        next.updated_at = self.at;
        next.history.push(OrderEvent {
            state,
            message: self.message.clone(),
            source: self.source.clone(),
            at: self.at,
        });
        Some(next)
    }
}

/// The longest `NOTIFY` payload PostgreSQL takes is 7999 bytes; a longer announcement goes
/// without its change.
const MAX_PAYLOAD: usize = 7900;

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEffect {
    /// The pending order took the callback's state.
    Applied,
    /// The order was already final: nothing changed. `conflicting` if the callback says otherwise.
    Duplicate { conflicting: bool },
    /// No order has this id yet, but one is being submitted: kept until its answer is stored.
    Held,
    /// As `Held`, but the tenant already has [`MAX_HELD_CALLBACKS`] held: not kept (the vendor
    /// should try again later).
    HoldFull,
    /// No such order, and nothing in flight that could become it.
    UnknownOrder,
}

/// Why storing the vendor's answer failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("order id {0} is already stored for this tenant")]
    DuplicateOrderId(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// An order with its history, read in one query (the history as parallel arrays).
#[derive(sqlx::FromRow)]
struct OrderRow {
    id: i64,
    order_id: Option<String>,
    state: String,
    company_id: String,
    numbers: Vec<String>,
    message: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    event_states: Vec<String>,
    event_messages: Vec<String>,
    event_sources: Vec<String>,
    event_ats: Vec<DateTime<Utc>>,
}

/// Selects orders (`o`) with their history; append `WHERE ...` and `GROUP BY o.id`.
const SELECT_ORDERS: &str =
    "SELECT o.id, o.order_id, o.state, o.company_id, o.numbers, o.message, o.created_at, o.updated_at,
        COALESCE(array_agg(e.state ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS event_states,
        COALESCE(array_agg(e.message ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS event_messages,
        COALESCE(array_agg(e.source ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS event_sources,
        COALESCE(array_agg(e.at ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS event_ats
   FROM provisioning_orders o LEFT JOIN provisioning_order_events e ON e.order_ref = o.id";

fn state_of(text: &str) -> OrderState {
    // The CHECK constraint allows only these and the two internal states, which are never read here.
    OrderState::parse(text).unwrap_or(OrderState::Pending)
}

/// Claims `request_id` for a new submission, or finds what it already did. The submission is in
/// flight for `answer_within` (the vendor's timeout plus a margin).
pub async fn claim_submission(
    pool: &PgPool,
    tenant: &str,
    request_id: &str,
    request_hash: &[u8],
    answer_within: Duration,
) -> Result<Submission, sqlx::Error> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO provisioning_orders (tenant, request_id, request_hash, state, answer_by)
         VALUES ($1, $2, $3, 'submitting', clock_timestamp() + make_interval(secs => $4))
         ON CONFLICT (tenant, request_id) DO NOTHING
         RETURNING id",
    )
    .bind(tenant)
    .bind(request_id)
    .bind(request_hash)
    .bind(answer_within.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    if let Some(id) = inserted {
        return Ok(Submission::New(id));
    }
    let (id, hash, state, message, due): (i64, Vec<u8>, String, String, bool) = sqlx::query_as(
        "SELECT id, request_hash, state, message, COALESCE(answer_by > clock_timestamp(), false)
           FROM provisioning_orders WHERE tenant = $1 AND request_id = $2",
    )
    .bind(tenant)
    .bind(request_id)
    .fetch_one(pool)
    .await?;
    if hash != request_hash {
        return Ok(Submission::Mismatch);
    }
    match state.as_str() {
        // Another call is waiting for the vendor's answer (its idempotency key was purged, or
        // its lease ran out while it waits): it is not sent twice, nor given up on.
        "submitting" if due => Ok(Submission::InFlight),
        // Overdue: the call that sent it ended without storing an answer.
        "submitting" => {
            let message = overdue_message();
            mark_unknown(pool, id, &message).await?;
            Ok(Submission::Unknown { message })
        }
        "unknown" => Ok(Submission::Unknown { message }),
        _ => Ok(Submission::Existing(Box::new(load(pool, id).await?))),
    }
}

fn overdue_message() -> String {
    "the vendor's answer never arrived: the call that sent the order ended without one".to_owned()
}

/// What one [`sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Overdue submissions turned `unknown`.
    pub overdue_submissions: u64,
    /// Held callbacks deleted, their hold expired.
    pub expired_callbacks: u64,
}

/// Turns overdue submissions `unknown` and deletes held callbacks whose hold expired. Safe to run
/// on every replica at once.
pub async fn sweep(pool: &PgPool) -> Result<Swept, sqlx::Error> {
    let overdue = sqlx::query(
        "UPDATE provisioning_orders SET state = 'unknown', message = $1, updated_at = clock_timestamp()
          WHERE state = 'submitting' AND answer_by < clock_timestamp()",
    )
    .bind(overdue_message())
    .execute(pool)
    .await?
    .rows_affected();
    let expired =
        sqlx::query("DELETE FROM provisioning_callbacks WHERE applied_at IS NULL AND hold_until < clock_timestamp()")
            .execute(pool)
            .await?
            .rows_affected();
    Ok(Swept { overdue_submissions: overdue, expired_callbacks: expired })
}

/// Forgets a submission the vendor certainly did not take (it refused it, or it was never sent),
/// so the request may be corrected and sent again with the same request_id.
pub async fn abandon(pool: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM provisioning_orders WHERE id = $1 AND state = 'submitting'")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Keeps a submission whose outcome is unknown, so that it is never sent again.
pub async fn mark_unknown(pool: &PgPool, id: i64, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provisioning_orders SET state = 'unknown', message = $2, updated_at = clock_timestamp()
          WHERE id = $1 AND state IN ('submitting', 'unknown')",
    )
    .bind(id)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

async fn lock_order(tx: &mut Transaction<'_, Postgres>, tenant: &str, order_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))")
        .bind(tenant)
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn add_event(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    state: OrderState,
    message: &str,
    source: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO provisioning_order_events (order_ref, state, message, source, at)
         VALUES ($1, $2, $3, $4, clock_timestamp())",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(message)
    .bind(source)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `NOTIFY` payload of an announcement: without its change when that would be too long.
fn payload(announcement: &Announcement) -> String {
    let payload = serde_json::to_string(announcement).unwrap_or_default();
    if payload.len() <= MAX_PAYLOAD {
        return payload;
    }
    serde_json::to_string(&Announcement { change: None, ..announcement.clone() }).unwrap_or_default()
}

/// Announces a committed change of an order to the watch hubs of every replica.
///
/// After the commit, in a transaction of its own with asynchronous commit, not inside the
/// change's transaction: PostgreSQL serialises the commits of all notifying transactions on one
/// lock, held through the commit's WAL flush, which made concurrent callbacks commit one flush at
/// a time (200 watchers' p99 was 180 ms). A notification lost to a crash between the two commits
/// is covered by the watchers' periodic re-read ([`super::watch`]).
pub async fn announce<'c>(db: impl sqlx::PgExecutor<'c>, announcements: &[Announcement]) -> Result<(), sqlx::Error> {
    let payloads: Vec<String> = announcements.iter().map(payload).collect();
    sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(db)
        .await?;
    Ok(())
}

/// The `order.state_changed` event of an order's change.
pub fn order_event(tenant: &str, order_id: &str, state: OrderState, message: &str, source: &str) -> Event {
    let data = serde_json::json!({
        "tenant": tenant,
        "order_id": order_id,
        "state": state.as_str(),
        "message": message,
        "source": source,
    });
    // One event per order and state: replicas (or a repeated callback) report it once.
    Event::new(EventType::OrderStateChanged, data).with_stable_id(&["order", tenant, order_id, state.as_str()])
}

/// Moves a pending order to a callback's outcome, inside `tx`.
async fn apply_outcome(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    state: OrderState,
    message: &str,
) -> Result<(), sqlx::Error> {
    // clock_timestamp(), not now(): updated_at is as close to the commit as can be (the
    // benchmark measures commit-to-watcher latency from it).
    sqlx::query(
        "UPDATE provisioning_orders SET state = $2, message = $3, updated_at = clock_timestamp() WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(message)
    .execute(&mut **tx)
    .await?;
    add_event(tx, id, state, message, SOURCE_CALLBACK).await
}

/// Stores the vendor's answer to the submission `id`, applying a callback that came first.
pub async fn record_answer(
    pool: &PgPool,
    id: i64,
    tenant: &str,
    answer: &VendorOrder,
    report: Option<&Tenant>,
) -> Result<(StoredOrder, bool), RecordError> {
    let mut tx = pool.begin().await?;
    lock_order(&mut tx, tenant, &answer.order_id).await?;
    let updated = sqlx::query(
        "UPDATE provisioning_orders
            SET order_id = $2, state = $3, company_id = $4, numbers = $5, message = $6, updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(id)
    .bind(&answer.order_id)
    .bind(answer.state.as_str())
    .bind(answer.company_id.as_deref().unwrap_or_default())
    .bind(&answer.numbers)
    .bind(&answer.message)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(e)) = &updated
        && e.is_unique_violation()
    {
        return Err(RecordError::DuplicateOrderId(answer.order_id.clone()));
    }
    updated?;
    add_event(&mut tx, id, answer.state, &answer.message, SOURCE_PROVISION).await?;
    let mut final_state = (answer.state, answer.message.clone(), SOURCE_PROVISION);
    if answer.state == OrderState::Pending {
        let held: Option<(String, String)> = sqlx::query_as(
            "UPDATE provisioning_callbacks SET applied_at = clock_timestamp()
              WHERE tenant = $1 AND order_id = $2 AND applied_at IS NULL
              RETURNING result, message",
        )
        .bind(tenant)
        .bind(&answer.order_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((result, message)) = held {
            apply_outcome(&mut tx, id, state_of(&result), &message).await?;
            final_state = (state_of(&result), message, SOURCE_CALLBACK);
        }
    }
    let reported = match report {
        Some(t) => {
            let (state, message, source) = &final_state;
            events::emit(&mut tx, t, &order_event(tenant, &answer.order_id, *state, message, source)).await?
        }
        None => false,
    };
    tx.commit().await?;
    let announcement = Announcement { tenant: tenant.to_owned(), order_id: answer.order_id.clone(), change: None };
    if let Err(e) = announce(pool, &[announcement]).await {
        // The change is committed; watchers see it at their next periodic re-read.
        tracing::warn!(error = %e, tenant, order_id = ?answer.order_id, "announcing an order change failed");
    }
    Ok((load(pool, id).await?, reported))
}

/// Applies a vendor callback. Committed when this returns, with the announcement of the change
/// to send (see [`announce`]) when it changed the order.
///
/// One round trip (the migration's `provisioning_apply_callback`, whose steps mirror
/// [`record_answer`]'s): under a burst of callbacks, each round trip of a transaction is a wait
/// for a busy database, and the order's watchers wait with it.
pub async fn apply_callback(
    conn: &mut PgConnection,
    tenant: &str,
    outcome: &OrderOutcome,
) -> Result<(CallbackEffect, Option<Announcement>), sqlx::Error> {
    let (effect, events_before, changed_at): (String, Option<i64>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT * FROM provisioning_apply_callback($1, $2, $3, $4, $5)")
            .bind(tenant)
            .bind(&outcome.order_id)
            .bind(outcome.state.as_str())
            .bind(&outcome.message)
            .bind(MAX_HELD_CALLBACKS)
            .fetch_one(conn)
            .await?;
    let effect = match effect.as_str() {
        "applied" => CallbackEffect::Applied,
        "duplicate" => CallbackEffect::Duplicate { conflicting: false },
        "conflicting" => CallbackEffect::Duplicate { conflicting: true },
        "held" => CallbackEffect::Held,
        "hold_full" => CallbackEffect::HoldFull,
        "unknown" => CallbackEffect::UnknownOrder,
        other => return Err(sqlx::Error::Protocol(format!("provisioning_apply_callback answered `{other}`"))),
    };
    if effect != CallbackEffect::Applied {
        return Ok((effect, None));
    }
    let change = match (events_before, changed_at) {
        (Some(n), Some(at)) => Some(OrderChange {
            events_before: usize::try_from(n).unwrap_or(usize::MAX),
            state: outcome.state.as_str().to_owned(),
            message: outcome.message.clone(),
            source: SOURCE_CALLBACK.to_owned(),
            at,
        }),
        _ => None,
    };
    Ok((effect, Some(Announcement { tenant: tenant.to_owned(), order_id: outcome.order_id.clone(), change })))
}

impl From<OrderRow> for StoredOrder {
    fn from(r: OrderRow) -> Self {
        let history = r
            .event_states
            .iter()
            .zip(r.event_messages)
            .zip(r.event_sources)
            .zip(r.event_ats)
            .map(|(((state, message), source), at)| OrderEvent { state: state_of(state), message, source, at })
            .collect();
        StoredOrder {
            seq: r.id,
            order_id: r.order_id.unwrap_or_default(),
            state: state_of(&r.state),
            company_id: r.company_id,
            numbers: r.numbers,
            message: r.message,
            history,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

async fn load(pool: &PgPool, id: i64) -> Result<StoredOrder, sqlx::Error> {
    let row: OrderRow =
        sqlx::query_as(&format!("{SELECT_ORDERS} WHERE o.id = $1 GROUP BY o.id")).bind(id).fetch_one(pool).await?;
    Ok(row.into())
}

/// A tenant's order by the vendor's order id.
pub async fn get_order(pool: &PgPool, tenant: &str, order_id: &str) -> Result<Option<StoredOrder>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(&format!(
        "{SELECT_ORDERS}
          WHERE o.tenant = $1 AND o.order_id = $2 AND o.state IN ('pending', 'completed', 'failed')
          GROUP BY o.id"
    ))
    .bind(tenant)
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// A page of a tenant's orders, newest first: those with `seq < before` (all when `None`), in
/// `state` (any when `None`), at most `limit`.
pub async fn list_orders(
    pool: &PgPool,
    tenant: &str,
    state: Option<OrderState>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredOrder>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(&format!(
        "{SELECT_ORDERS}
          WHERE o.tenant = $1 AND o.state IN ('pending', 'completed', 'failed')
            AND ($2::text IS NULL OR o.state = $2) AND ($3::bigint IS NULL OR o.id < $3)
          GROUP BY o.id
          ORDER BY o.id DESC
          LIMIT $4"
    ))
    .bind(tenant)
    .bind(state.map(OrderState::as_str))
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> StoredOrder {
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        StoredOrder {
            seq: 1,
            order_id: "42".into(),
            state: OrderState::Pending,
            company_id: "1001".into(),
            numbers: Vec::new(),
            message: "received".into(),
            history: vec![OrderEvent {
                state: OrderState::Pending,
                message: "received".into(),
                source: SOURCE_PROVISION.into(),
                at,
            }],
            created_at: at,
            updated_at: at,
        }
    }

    fn change(events_before: usize) -> OrderChange {
        OrderChange {
            events_before,
            state: "completed".into(),
            message: "done".into(),
            source: SOURCE_CALLBACK.into(),
            at: Utc::now(),
        }
    }

    #[test]
    fn an_announced_change_applies_only_to_the_order_it_follows() {
        let order = pending();
        let next = change(1).apply(&order).unwrap();
        assert_eq!((next.state, next.message.as_str(), next.history.len()), (OrderState::Completed, "done", 2));
        assert_eq!(next.updated_at, next.history[1].at);
        assert_eq!(change(0).apply(&order), None, "a watcher that missed a change reads the order");
        assert_eq!(change(2).apply(&next), None, "a final order does not change");
    }

    #[test]
    fn announcements_travel_as_json_and_an_oversized_change_is_left_out() {
        let announcement = Announcement { tenant: "acme".into(), order_id: "a b".into(), change: Some(change(1)) };
        let json = payload(&announcement);
        assert_eq!(serde_json::from_str::<Announcement>(&json).unwrap(), announcement);
        let mut long = announcement.clone();
        long.change.as_mut().unwrap().message = "é".repeat(5000);
        let json = payload(&long);
        assert!(json.len() <= MAX_PAYLOAD, "{}", json.len());
        assert_eq!(serde_json::from_str::<Announcement>(&json).unwrap().change, None, "watchers read the order");
    }
}
