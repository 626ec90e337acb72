//! The status follow-up: delivers each customer's latest desired status to the vendor, now (from
//! SetCustomerStatus) or later (the background worker), until the vendor agrees.
//!
//! Desired statuses are stored before delivery (store.rs). A delivery holds a lease on its row,
//! claimed through `FOR UPDATE SKIP LOCKED`, so that no two replicas (or a call and the worker)
//! deliver one customer's status at once and an older status can never land after a newer one.
//! A delivery that finds a newer desire when it finishes delivers that one too. Transient failures
//! are retried with jittered exponential backoff, forever: a change is never lost.

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::{
    AccountArea,
    provider::{AccountProvider, DesiredStatus, ProviderError},
    store::{self, Claimed},
};
use crate::{app::AppState, ops::retry::Backoff};

/// How long a delivery may hold a customer's row. Longer than any delivery (a lookup with its
/// retries and one PATCH, each with its timeout); a crashed holder's rows are free after it.
pub const LEASE: Duration = Duration::from_secs(120);
/// Retry delays after failed deliveries: 0.5 s doubling to 5 minutes, jittered, never giving up.
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(300), u32::MAX);
/// How often the worker looks for due deliveries.
pub const POLL: Duration = Duration::from_millis(500);
/// Deliveries claimed per poll.
const BATCH: i64 = 32;
/// How long a status waits when its tenant cannot deliver it (trigger gone or switched off).
const PARKED: Duration = Duration::from_secs(60);

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
    tenant: &str,
    number: &str,
    desired: DesiredStatus,
) -> Result<Delivery, DeliveryError> {
    match store::record_desired(db, tenant, number, desired, LEASE).await? {
        Some(claimed) => deliver_from(db, provider, claimed).await,
        None => Ok(Delivery::Pending),
    }
}

/// Delivers `claimed`, then any newer desire that arrived meanwhile, until one is applied, the
/// vendor fails (released for a later retry) or refuses (rejected for good).
async fn deliver_from(
    db: &PgPool,
    provider: &dyn AccountProvider,
    mut claimed: Claimed,
) -> Result<Delivery, DeliveryError> {
    loop {
        match provider.set_status(&claimed.account_number, claimed.desired).await {
            Ok(change) => {
                if store::finish_applied(db, &claimed).await? {
                    tracing::info!(
                        tenant = %claimed.tenant, account = %claimed.account_number, status = claimed.desired.as_str(),
                        ?change, attempts = claimed.attempts, "customer status delivered"
                    );
                    return Ok(Delivery::Applied(claimed.desired));
                }
                // A newer desire arrived while this one was on its way: deliver it now.
                match store::claim_one(db, &claimed.tenant, &claimed.account_number, LEASE).await? {
                    Some(next) => claimed = next,
                    None => return Ok(Delivery::Pending),
                }
            }
            Err(err @ (ProviderError::NoAccount { .. } | ProviderError::Rejected { .. })) => {
                tracing::warn!(
                    tenant = %claimed.tenant, account = %claimed.account_number, error = %err,
                    "customer status refused by the vendor"
                );
                store::finish_rejected(db, &claimed, &err.to_string()).await?;
                return Err(err.into());
            }
            Err(err) => {
                // Outages, but also refused credentials: an operator fixes those, and the
                // change must still arrive then.
                let retry_in = RETRY.delay(u32::try_from(claimed.attempts).unwrap_or(1).max(1));
                tracing::warn!(
                    tenant = %claimed.tenant, account = %claimed.account_number, error = %err,
                    retry_in_ms = retry_in.as_millis() as u64, "customer status not delivered yet"
                );
                store::release(db, &claimed, retry_in, &err.to_string()).await?;
                return Ok(Delivery::Pending);
            }
        }
    }
}

/// The background worker: delivers due statuses until the server shuts down. Rows it holds at
/// shutdown are released, so the next start (or another replica) takes them at once.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let claimed = match store::claim_due(&state.db, BATCH, LEASE).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "status follow-up: claiming due deliveries failed");
                    continue;
                }
            };
            if claimed.is_empty() {
                continue;
            }
            let work = futures::future::join_all(claimed.iter().cloned().map(|c| deliver_claimed(&state, c)));
            tokio::select! {
                _ = work => {}
                _ = state.shutdown.cancelled() => {
                    for c in &claimed {
                        if let Err(e) = store::release(&state.db, c, Duration::ZERO, "").await {
                            tracing::warn!(error = %e, "status follow-up: releasing a delivery at shutdown failed");
                        }
                    }
                    return;
                }
            }
        }
    })
}

async fn deliver_claimed(state: &AppState, claimed: Claimed) {
    let trigger = state.registry.get(&claimed.tenant).and_then(|t| {
        t.trigger::<AccountArea>().filter(|t| t.enabled && t.settings.customer_status).map(|t| t.inner.clone())
    });
    let Some(trigger) = trigger else {
        let why = "the tenant has no enabled account trigger with customer_status: true";
        if let Err(e) = store::release(&state.db, &claimed, PARKED, why).await {
            tracing::warn!(error = %e, "status follow-up: parking a delivery failed");
        }
        return;
    };
    let provider: Arc<dyn AccountProvider> = trigger.provider;
    match deliver_from(&state.db, provider.as_ref(), claimed).await {
        Ok(_) | Err(DeliveryError::Refused(_)) => {}
        Err(DeliveryError::Store(e)) => tracing::warn!(error = %e, "status follow-up: the status store failed"),
    }
}
