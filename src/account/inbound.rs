//! What the CRM's inbound triggers (the events area) can ask of the account area, read from the
//! trigger's customer exactly as the gRPC calls read their requests (`account_number_field`,
//! `status_map`, the feature switches):
//! - `set_customer_status`: the customer's status, through the durable status follow-up;
//! - `sync_sip_lines`: a refresh of the customer's custom SIP table, through the durable refresh.
//!
//! Both are recorded inside the event's own transaction and delivered after its commit.

use std::sync::Arc;

use sqlx::PgConnection;

use super::{
    area::AccountArea,
    follow_up,
    grpc::account_number,
    provider::{AccountProvider, DesiredStatus},
    reconciler::{self, Report},
    sip_refresh,
    sip_sync::SyncMode,
    store::{self, Claimed},
};
use crate::{
    ops::{ApiError, Violations},
    platform::AppState,
    proto::v1 as pb,
    registry::{
        Tenant,
        events::{Action, InboundTrigger, SipSyncMode},
    },
};

/// A trigger's change, read and checked, ready to record.
pub struct Change {
    /// The customer's account number at the vendor.
    pub number: String,
    pub kind: ChangeKind,
}

pub enum ChangeKind {
    Status { desired: DesiredStatus, provider: Arc<dyn AccountProvider> },
    SipRefresh { mode: SyncMode },
}

/// A recorded change whose delivery this process claimed.
pub enum Claim {
    Status(Claimed<DesiredStatus>, Arc<dyn AccountProvider>),
    SipRefresh(Claimed<SyncMode>),
}

impl Change {
    /// What the sender is told was asked for: `desired_status` or `sync_mode`.
    pub fn answer(&self) -> (&'static str, &'static str) {
        match &self.kind {
            ChangeKind::Status { desired, .. } => ("desired_status", desired.as_str()),
            ChangeKind::SipRefresh { mode } => ("sync_mode", store::FollowUp::as_str(*mode)),
        }
    }
}

/// Reads a trigger's customer for its action. The tenant's account trigger must be enabled with
/// the action's switch on (`customer_status: true`; `synchro_console: true` and a
/// `custom_sip_table` for a refresh); bad fields are INVALID_ARGUMENT naming them
/// (`customer.nickname`, `customer.status`).
pub fn read(tenant: &Tenant, trigger: &InboundTrigger, customer: &pb::Customer) -> Result<Change, ApiError> {
    let account = tenant.enabled_trigger::<AccountArea>()?;
    let mut v = Violations::new();
    let kind = match trigger.action {
        Action::SetCustomerStatus => {
            if !account.settings.customer_status {
                return Err(ApiError::failed_precondition(
                    "FEATURE_DISABLED",
                    format!("the account trigger of tenant `{}` has customer_status: false", tenant.id),
                ));
            }
            if customer.status.trim().is_empty() {
                v.add("customer.status", "required: the customer's new CRM status, e.g. `current`");
            }
            let desired = account.settings.status_map.map(&customer.status);
            ChangeKind::Status { desired, provider: Arc::clone(&account.inner.provider) }
        }
        Action::SyncSipLines => {
            sip_refresh::ready(tenant)?;
            let mode = match trigger.sync_mode {
                SipSyncMode::Full => SyncMode::Full,
                SipSyncMode::AddOnly => SyncMode::AddOnly,
            };
            ChangeKind::SipRefresh { mode }
        }
    };
    let number = account_number(Some(customer), &account.settings.account_number_field, &mut v);
    v.into_result()?;
    Ok(Change { number, kind })
}

/// Records the change as the customer's latest request inside the caller's transaction,
/// claiming its delivery when no other delivery holds the customer.
pub async fn record(
    conn: &mut PgConnection,
    state: &AppState,
    tenant: &str,
    change: &Change,
) -> Result<Option<Claim>, sqlx::Error> {
    let lease = follow_up::lease(state);
    Ok(match &change.kind {
        ChangeKind::Status { desired, provider } => {
            store::record_desired(conn, tenant, &change.number, *desired, lease)
                .await?
                .map(|claimed| Claim::Status(claimed, Arc::clone(provider)))
        }
        ChangeKind::SipRefresh { mode } => {
            store::record_desired(conn, tenant, &change.number, *mode, lease).await?.map(Claim::SipRefresh)
        }
    })
}

/// After the commit: delivers a claimed change now, in the background (a vendor outage leaves it
/// to the follow-up worker, as for the gRPC calls).
pub fn deliver_soon(state: &AppState, claim: Claim) {
    let state = state.clone();
    tokio::spawn(async move {
        match claim {
            Claim::Status(claimed, provider) => {
                let (report, account) = (Report::of(&state, &claimed.tenant), claimed.account_number.clone());
                let delivered =
                    reconciler::deliver_recorded(&state.db, provider.as_ref(), &report, claimed, state.instance).await;
                if let Err(e) = delivered {
                    tracing::info!(error = %e, %account, "an inbound status change was not delivered now");
                }
            }
            Claim::SipRefresh(claimed) => sip_refresh::deliver(&state, claimed).await,
        }
    });
}
