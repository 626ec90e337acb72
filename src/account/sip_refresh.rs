//! Syncing a customer's custom SIP table from the vendor: the one way it is done, whether the
//! caller is SyncSipLines (the gRPC edge) or the CRM's inbound trigger with `action:
//! sync_sip_lines` (the durable refresh below, retried through vendor outages).
//!
//! A sync reads the vendor first, holding no database connection, lock or transaction (a slow
//! vendor must not starve the pool); then one short transaction under the customer's lock
//! re-reads the stored rows and writes the plan, so two syncs never interleave their writes and a
//! vendor failure writes nothing. A ticket taken before the vendor read keeps an older read from
//! overwriting a newer one (or rows of a deleted account from coming back): such a sync reads the
//! vendor again. The `sip_lines.synced` event is written in the same transaction.
//!
//! A refresh is a request stored with the inbound event (store.rs, `account_sip_refreshes`) and
//! delivered by the follow-up loop: now, after the commit, or later by the worker. Vendor outages
//! are retried with backoff for as long as they last; an account the vendor does not have ends
//! the request `rejected`; what only an operator can fix is retried for
//! [`follow_up::GIVE_UP_AFTER`].

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tonic::Code;

use super::{
    area::AccountArea,
    follow_up,
    provider::{AccountProvider, DELIVERY_BUDGET, ProviderError},
    settings::SipTable,
    sip_sync::{self, SyncMode, SyncPlan},
    store::{self, Claimed, Finish},
};
use crate::{
    ops::ApiError,
    platform::{
        AppState,
        events::{self, EventType},
        outbox::Outbox,
    },
    registry::Tenant,
};

/// Attempts of a sync that finds its vendor read older than the table (a sync or a delete that
/// read the vendor later has written meanwhile).
const SYNC_ATTEMPTS: u32 = 3;
/// Names the refresh follow-up in logs.
const WHAT: &str = "SIP-table refresh";

/// Why a sync wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Vendor(#[from] ProviderError),
    /// Another writer of the customer's table held its lock for [`store::LOCK_WAIT`].
    #[error("another sync or delete of this customer's SIP table is running")]
    Busy,
    /// Other writers kept writing first, [`SYNC_ATTEMPTS`] times.
    #[error("other syncs or a delete of this customer kept writing the SIP table first")]
    Concurrent,
    #[error("{context} failed: {error}")]
    Store { context: &'static str, error: sqlx::Error },
}

impl SyncError {
    /// A failure to take a customer's SIP-table lock: busy, or the database failing.
    pub fn lock(error: sqlx::Error) -> Self {
        if store::is_lock_timeout(&error) {
            Self::Busy
        } else {
            Self::Store { context: "locking the SIP table", error }
        }
    }

    fn store(context: &'static str) -> impl Fn(sqlx::Error) -> Self {
        move |error| Self::Store { context, error }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Vendor(e) => e.into(),
            SyncError::Busy => ApiError::new(
                Code::Aborted,
                "CUSTOMER_BUSY",
                "another sync or delete of this customer's SIP table is running; retry shortly",
            )
            .with_retry_after(Duration::from_secs(1)),
            SyncError::Concurrent => ApiError::new(
                Code::Aborted,
                "CONCURRENT_SYNC",
                "other syncs or a delete of this customer kept writing the SIP table first; retry shortly",
            )
            .with_retry_after(Duration::from_secs(1)),
            SyncError::Store { context, error } => ApiError::database(context, &error),
        }
    }
}

/// Where a sync writes and whom it tells.
pub struct SyncTarget<'a> {
    pub db: &'a PgPool,
    pub outbox: &'a Outbox,
    pub tenant: &'a Tenant,
    pub table: SipTable,
}

/// Syncs customer `number`'s table to the vendor's lines (`dry_run`: plans only, writes nothing).
pub async fn sync(
    to: &SyncTarget<'_>,
    provider: &dyn AccountProvider,
    number: &str,
    mode: SyncMode,
    dry_run: bool,
) -> Result<SyncPlan, SyncError> {
    let (tenant, table) = (to.tenant.id.as_str(), &to.table);
    if dry_run {
        let lines = provider.sip_lines(number).await?;
        let read = SyncError::store("reading the SIP table");
        let mut conn = to.db.acquire().await.map_err(&read)?;
        let stored = store::rows(&mut conn, tenant, number).await.map_err(&read)?;
        return Ok(sip_sync::plan(stored, &lines, table, mode));
    }
    for _ in 0..SYNC_ATTEMPTS {
        let ticket = store::sip_ticket(to.db).await.map_err(SyncError::store("taking a sync ticket"))?;
        let lines = provider.sip_lines(number).await?;
        let mut tx = to.db.begin().await.map_err(SyncError::store("syncing the SIP table"))?;
        store::lock_customer(&mut tx, tenant, number).await.map_err(SyncError::lock)?;
        if store::written_since(&mut tx, tenant, number, ticket)
            .await
            .map_err(SyncError::store("reading the sync ticket"))?
        {
            tx.rollback().await.map_err(SyncError::store("syncing the SIP table"))?;
            tracing::debug!(tenant, account = number, "a later sync or delete wrote first; reading the vendor again");
            continue;
        }
        let stored = store::rows(&mut tx, tenant, number).await.map_err(SyncError::store("reading the SIP table"))?;
        let plan = sip_sync::plan(stored, &lines, table, mode);
        if !plan.is_noop() {
            store::apply(&mut tx, tenant, number, &plan, table)
                .await
                .map_err(SyncError::store("writing the SIP table"))?;
        }
        store::record_write(&mut tx, tenant, number, ticket)
            .await
            .map_err(SyncError::store("recording the sync ticket"))?;
        let reported = if plan.is_noop() || !events::wanted(to.tenant, EventType::SipLinesSynced) {
            false
        } else {
            let event = sip_sync::synced_event(tenant, number, &plan);
            events::emit(&mut tx, to.tenant, &event).await.map_err(SyncError::store("storing the sync's event"))?
        };
        tx.commit().await.map_err(SyncError::store("committing the SIP table"))?;
        if reported {
            to.outbox.wake();
        }
        tracing::info!(
            tenant,
            account = number,
            added = plan.added.len(),
            updated = plan.updated.len(),
            deleted = plan.deleted.len(),
            unchanged = plan.unchanged.len(),
            "SIP lines synced"
        );
        return Ok(plan);
    }
    Err(SyncError::Concurrent)
}

// ---- the durable refresh ----

/// What a refresh needs of its tenant, checked as SyncSipLines' edge checks it (before an inbound
/// trigger's refresh is stored, and again when it runs): an enabled account trigger with
/// `synchro_console: true` and a `custom_sip_table`; FAILED_PRECONDITION naming the setting
/// otherwise.
pub fn ready(tenant: &Tenant) -> Result<(Arc<dyn AccountProvider>, SipTable), ApiError> {
    let trigger = tenant.enabled_trigger::<AccountArea>()?;
    if !trigger.settings.synchro_console {
        return Err(ApiError::failed_precondition(
            "FEATURE_DISABLED",
            format!("the account trigger of tenant `{}` has synchro_console: false", tenant.id),
        ));
    }
    let Some(table) = trigger.settings.sip_table else {
        return Err(ApiError::failed_precondition(
            "SIP_TABLE_NOT_CONFIGURED",
            format!("tenant `{}` declares no custom_sip_table in its account trigger", tenant.id),
        ));
    };
    Ok((Arc::clone(&trigger.inner.provider), table))
}

/// Delivers a claimed refresh, then any newer request that arrived meanwhile, until one is
/// applied, the vendor fails (released for a later retry) or refuses (rejected for good).
pub async fn deliver(state: &AppState, mut claimed: Claimed<SyncMode>) {
    let lease = follow_up::lease(state);
    loop {
        let tenant = state.registry.get(&claimed.tenant);
        let ready = match tenant.as_deref() {
            None => Err("the tenant is no longer served".to_owned()),
            Some(t) => ready(t).map(|(provider, table)| (t, provider, table)).map_err(|e| e.message.clone()),
        };
        let outcome = match ready {
            Err(why) => Err(Failure { operator: true, refused: false, error: why }),
            Ok((tenant, provider, table)) => {
                let to = SyncTarget { db: &state.db, outbox: &state.outbox, tenant, table };
                let run = sync(&to, provider.as_ref(), &claimed.account_number, claimed.desired, false);
                match tokio::time::timeout(DELIVERY_BUDGET, run).await {
                    Ok(Ok(plan)) => Ok(plan),
                    Ok(Err(e)) => Err(Failure::of(e)),
                    Err(_) => Err(Failure {
                        operator: false,
                        refused: false,
                        error: format!("no answer within the delivery budget of {} s", DELIVERY_BUDGET.as_secs()),
                    }),
                }
            }
        };
        let done = match outcome {
            Ok(plan) => finish(state, &claimed, None).await.inspect(|f| {
                if *f == Finish::Done {
                    tracing::info!(
                        tenant = %claimed.tenant, account = %claimed.account_number, attempts = claimed.attempts,
                        added = plan.added.len(), updated = plan.updated.len(), deleted = plan.deleted.len(),
                        "SIP-table refresh applied"
                    );
                }
            }),
            Err(failure) => retry_later(state, &claimed, failure).await.map(|()| Finish::Done),
        };
        match done {
            Ok(Finish::Done) => return,
            Ok(Finish::LeaseLost) => return follow_up::lease_lost(WHAT, &claimed),
            // A newer request arrived while this one ran (it may have read the vendor before the
            // change that caused it): run again.
            Ok(Finish::Newer) => {
                match store::claim_one::<SyncMode>(&state.db, &claimed.tenant, &claimed.account_number, lease).await {
                    Ok(Some(next)) => claimed = next,
                    Ok(None) => return,
                    Err(e) => return tracing::warn!(error = %e, "{WHAT}: claiming a newer request failed"),
                }
            }
            Err(e) => return tracing::warn!(error = %e, "{WHAT}: the refresh store failed"),
        }
    }
}

/// Why a refresh did not happen this time.
struct Failure {
    /// Only an operator can fix it (credentials, settings): retried for GIVE_UP_AFTER only.
    operator: bool,
    /// The vendor refused it for good (no such account): rejected at once.
    refused: bool,
    error: String,
}

impl Failure {
    fn of(e: SyncError) -> Self {
        let error = e.to_string();
        match e {
            SyncError::Vendor(ProviderError::NoAccount { .. } | ProviderError::Rejected { .. }) => {
                Self { operator: false, refused: true, error }
            }
            SyncError::Vendor(v) => Self { operator: !v.is_transient(), refused: false, error },
            SyncError::Busy | SyncError::Concurrent | SyncError::Store { .. } => {
                Self { operator: false, refused: false, error }
            }
        }
    }
}

async fn finish(state: &AppState, claimed: &Claimed<SyncMode>, rejected: Option<&str>) -> Result<Finish, sqlx::Error> {
    let mut conn = state.db.acquire().await?;
    match rejected {
        None => store::finish_applied(&mut conn, claimed).await,
        Some(why) => store::finish_rejected(&mut conn, claimed, why).await,
    }
}

async fn retry_later(state: &AppState, claimed: &Claimed<SyncMode>, failure: Failure) -> Result<(), sqlx::Error> {
    let (tenant, account) = (&claimed.tenant, &claimed.account_number);
    let give_up = failure.refused || (failure.operator && claimed.age >= follow_up::GIVE_UP_AFTER);
    if give_up {
        let why = if failure.refused {
            failure.error
        } else {
            let hours = follow_up::GIVE_UP_AFTER.as_secs() / 3600;
            format!("given up after {hours} hours undelivered: {}", failure.error)
        };
        tracing::warn!(%tenant, %account, error = %why, "SIP-table refresh rejected, not retried");
        if finish(state, claimed, Some(&why)).await? == Finish::LeaseLost {
            follow_up::lease_lost(WHAT, claimed);
        }
        return Ok(());
    }
    let retry_in = follow_up::retry_in(claimed.attempts, failure.operator);
    tracing::warn!(
        %tenant, %account, error = %failure.error, retry_in_ms = retry_in.as_millis() as u64,
        "SIP-table refresh not done yet"
    );
    if !store::release(&mut *state.db.acquire().await?, claimed, retry_in, &failure.error).await? {
        follow_up::lease_lost(WHAT, claimed);
    }
    Ok(())
}

/// The background worker: runs due refreshes until the server shuts down.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    follow_up::spawn::<SyncMode, _, _>(state, WHAT, |state, claimed| async move { deliver(&state, claimed).await })
}
