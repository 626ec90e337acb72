//! The status follow-up: delivers each customer's latest desired status to the vendor, now (from
//! SetCustomerStatus) or later (the background worker), until the vendor agrees.
//!
//! Desired statuses are stored before delivery (store.rs). A delivery holds a lease on its row,
//! claimed through `FOR UPDATE SKIP LOCKED` and named by a token, so that no two replicas (or a
//! call and the worker) deliver one customer's status at once and an older status can never land
//! after a newer one: a delivery's vendor work is cut off at [`DELIVERY_BUDGET`], well inside the
//! [`LEASE`], and only the token's holder may finish or release the row, so a holder that lost its
//! lease (a stalled process) changes nothing. A delivery that finds a newer desire when it
//! finishes delivers that one too.
//!
//! Vendor outages are retried with jittered exponential backoff for as long as they last: a change
//! is never lost to an outage. A refusal (no such account) ends the desire as `rejected` at once.
//! What only an operator can fix (credentials, a tenant whose trigger is gone or switched off) is
//! retried with a capped backoff for [`GIVE_UP_AFTER`], then ends as `rejected` with the reason
//! in `last_error` and in a warning.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::provider::DELIVERY_BUDGET;
use super::{
    area::AccountArea,
    follow_up,
    provider::{AccountProvider, DesiredStatus, ProviderError},
    store::{self, Claimed, Finish, Lease},
};
use crate::{
    platform::{
        AppState,
        events::{self, Event, EventType},
        outbox::Outbox,
    },
    registry::Tenant,
};

/// Who hears how a delivery ended: the tenant's webhook endpoints (`customer_status.applied`,
/// `customer_status.rejected`), written in the transaction that records the end.
#[derive(Clone)]
pub struct Report {
    /// `None`: the tenant is no longer served; nobody to tell.
    pub tenant: Option<Arc<Tenant>>,
    pub outbox: Outbox,
}

impl Report {
    pub fn of(state: &AppState, tenant: &str) -> Self {
        Self { tenant: state.registry.get(tenant), outbox: state.outbox.clone() }
    }
}

/// Records how `claimed` ended (applied, or rejected with the reason), with its event.
async fn finish(
    db: &PgPool,
    report: &Report,
    claimed: &Claimed,
    rejected: Option<&str>,
) -> Result<Finish, sqlx::Error> {
    let mut tx = db.begin().await?;
    let finish = match rejected {
        None => store::finish_applied(&mut tx, claimed).await?,
        Some(why) => store::finish_rejected(&mut tx, claimed, why).await?,
    };
    let kind = if rejected.is_some() { EventType::CustomerStatusRejected } else { EventType::CustomerStatusApplied };
    let mut sent = false;
    if finish == Finish::Done
        && let Some(tenant) = report.tenant.as_deref()
        && events::wanted(tenant, kind)
    {
        let data = serde_json::json!({
            "tenant": claimed.tenant,
            "account_number": claimed.account_number,
            "status": claimed.desired.as_str(),
            "attempts": claimed.attempts,
            "error": rejected.unwrap_or_default(),
        });
        let generation = claimed.generation.to_string();
        let event = Event::new(kind, data).with_stable_id(&[
            kind.as_str(),
            &claimed.tenant,
            &claimed.account_number,
            &generation,
        ]);
        sent = events::emit(&mut tx, tenant, &event).await?;
    }
    tx.commit().await?;
    if sent {
        report.outbox.wake();
    }
    Ok(finish)
}

use super::follow_up::{GIVE_UP_AFTER, LEASE};

/// Names this follow-up in logs.
const WHAT: &str = "status follow-up";

/// What a delivery achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The vendor has this status.
    Applied(DesiredStatus),
    /// Stored; the worker delivers it later.
    Pending,
}

/// Why a delivery failed for good or could not run.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The vendor refused the status (e.g. no such account); it is not retried.
    #[error(transparent)]
    Refused(#[from] ProviderError),
    #[error("the status store failed: {0}")]
    Store(#[from] sqlx::Error),
}

/// Stores `desired` as the customer's latest desired status, then delivers it now, unless another
/// delivery holds the customer (then delivering this newer desire is that delivery's job, and
/// the answer is `Pending`).
pub async fn desire(
    db: &PgPool,
    provider: &dyn AccountProvider,
    report: &Report,
    number: &str,
    desired: DesiredStatus,
    owner: i64,
) -> Result<Delivery, DeliveryError> {
    let lease = Lease { length: LEASE, owner };
    let tenant = report.tenant.as_ref().map_or("", |t| t.id.as_str());
    match store::record_desired(db, tenant, number, desired, lease).await? {
        Some(claimed) => deliver_from(db, provider, report, claimed, lease).await,
        None => Ok(Delivery::Pending),
    }
}

/// Delivers a desire recorded and claimed by someone else's transaction (an inbound trigger's),
/// after its commit; outcomes are recorded as [`desire`]'s are.
pub async fn deliver_recorded(
    db: &PgPool,
    provider: &dyn AccountProvider,
    report: &Report,
    claimed: Claimed,
    owner: i64,
) -> Result<Delivery, DeliveryError> {
    deliver_from(db, provider, report, claimed, Lease { length: LEASE, owner }).await
}

/// Delivers `claimed`, then any newer desire that arrived meanwhile, until one is applied, the
/// vendor fails (released for a later retry) or refuses (rejected for good).
async fn deliver_from(
    db: &PgPool,
    provider: &dyn AccountProvider,
    report: &Report,
    mut claimed: Claimed,
    lease: Lease,
) -> Result<Delivery, DeliveryError> {
    loop {
        let sent = tokio::time::timeout(DELIVERY_BUDGET, provider.set_status(&claimed.account_number, claimed.desired));
        let failure = match sent.await {
            Ok(Ok(change)) => match finish(db, report, &claimed, None).await? {
                Finish::Done => {
                    tracing::info!(
                        tenant = %claimed.tenant, account = %claimed.account_number, status = claimed.desired.as_str(),
                        ?change, attempts = claimed.attempts, "customer status delivered"
                    );
                    return Ok(Delivery::Applied(claimed.desired));
                }
                // A newer desire arrived while this one was on its way: deliver it now.
                Finish::Newer => {
                    match store::claim_one::<DesiredStatus>(db, &claimed.tenant, &claimed.account_number, lease).await?
                    {
                        Some(next) => {
                            claimed = next;
                            continue;
                        }
                        None => return Ok(Delivery::Pending),
                    }
                }
                Finish::LeaseLost => {
                    lease_lost(&claimed);
                    return Ok(Delivery::Pending);
                }
            },
            Ok(Err(err @ (ProviderError::NoAccount { .. } | ProviderError::Rejected { .. }))) => {
                tracing::warn!(
                    tenant = %claimed.tenant, account = %claimed.account_number, status = claimed.desired.as_str(),
                    error = %err, "customer status refused by the vendor: rejected, not retried"
                );
                if finish(db, report, &claimed, Some(&err.to_string())).await? == Finish::LeaseLost {
                    lease_lost(&claimed);
                }
                return Err(err.into());
            }
            Ok(Err(err)) => Failure { operator: !err.is_transient(), error: err.to_string() },
            Err(_) => Failure {
                operator: false,
                error: format!("no answer within the delivery budget of {} s", DELIVERY_BUDGET.as_secs()),
            },
        };
        retry_later(db, report, &claimed, failure).await?;
        return Ok(Delivery::Pending);
    }
}

/// Why a delivery did not happen this time.
struct Failure {
    /// Only an operator can fix it (credentials, settings): retried for [`GIVE_UP_AFTER`] only.
    operator: bool,
    error: String,
}

/// Releases `claimed` for a retry after a backoff, or gives it up if an operator has not fixed
/// what blocks it for [`GIVE_UP_AFTER`].
async fn retry_later(db: &PgPool, report: &Report, claimed: &Claimed, failure: Failure) -> Result<(), sqlx::Error> {
    let (tenant, account) = (&claimed.tenant, &claimed.account_number);
    if failure.operator && claimed.age >= GIVE_UP_AFTER {
        let why = format!("given up after {} hours undelivered: {}", GIVE_UP_AFTER.as_secs() / 3600, failure.error);
        tracing::warn!(%tenant, %account, status = claimed.desired.as_str(), error = %why, "customer status rejected");
        if finish(db, report, claimed, Some(&why)).await? == Finish::LeaseLost {
            lease_lost(claimed);
        }
        return Ok(());
    }
    let retry_in = follow_up::retry_in(claimed.attempts, failure.operator);
    tracing::warn!(
        %tenant, %account, error = %failure.error, retry_in_ms = retry_in.as_millis() as u64,
        "customer status not delivered yet"
    );
    if !store::release(&mut *db.acquire().await?, claimed, retry_in, &failure.error).await? {
        lease_lost(claimed);
    }
    Ok(())
}

fn lease_lost(claimed: &Claimed) {
    follow_up::lease_lost(WHAT, claimed);
}

/// The background worker: delivers due statuses until the server shuts down.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    follow_up::spawn::<DesiredStatus, _, _>(state, WHAT, |state, claimed| async move {
        deliver_claimed(&state, claimed).await
    })
}

async fn deliver_claimed(state: &AppState, claimed: Claimed) {
    let report = Report::of(state, &claimed.tenant);
    let trigger = state.registry.get(&claimed.tenant).and_then(|t| {
        t.trigger::<AccountArea>().filter(|t| t.enabled && t.settings.customer_status).map(|t| t.inner.clone())
    });
    let Some(trigger) = trigger else {
        let failure = Failure {
            operator: true,
            error: "the tenant has no enabled account trigger with customer_status: true".to_owned(),
        };
        if let Err(e) = retry_later(&state.db, &report, &claimed, failure).await {
            tracing::warn!(error = %e, "status follow-up: parking a delivery failed");
        }
        return;
    };
    let provider: Arc<dyn AccountProvider> = trigger.provider;
    let lease = Lease { length: LEASE, owner: state.instance };
    match deliver_from(&state.db, provider.as_ref(), &report, claimed, lease).await {
        Ok(_) | Err(DeliveryError::Refused(_)) => {}
        Err(DeliveryError::Store(e)) => tracing::warn!(error = %e, "status follow-up: the status store failed"),
    }
}
