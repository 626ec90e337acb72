//! What the CRM's inbound triggers (the events area) can do in the account area: set a
//! customer's status through the durable follow-up, read from the trigger's customer exactly as
//! SetCustomerStatus reads its request (`account_number_field`, `status_map`).

use std::sync::Arc;

use sqlx::PgConnection;

use super::{
    area::AccountArea,
    grpc::account_number,
    provider::{AccountProvider, DesiredStatus},
    reconciler::{self, LEASE, Report},
    store::{self, Claimed, Lease},
};
use crate::{
    ops::{ApiError, Violations},
    platform::AppState,
    proto::v1 as pb,
    registry::Tenant,
};

/// A status change read from a trigger, ready to record.
pub struct StatusChange {
    /// The customer's account number at the vendor.
    pub number: String,
    pub desired: DesiredStatus,
    provider: Arc<dyn AccountProvider>,
}

/// Reads a trigger's customer as SetCustomerStatus reads its request: the tenant's account
/// trigger must be enabled with `customer_status: true`; bad fields are INVALID_ARGUMENT naming
/// them (`customer.nickname`, `customer.status`).
pub fn status_change(tenant: &Tenant, customer: &pb::Customer) -> Result<StatusChange, ApiError> {
    let trigger = tenant.enabled_trigger::<AccountArea>()?;
    if !trigger.settings.customer_status {
        return Err(ApiError::failed_precondition(
            "FEATURE_DISABLED",
            format!("the account trigger of tenant `{}` has customer_status: false", tenant.id),
        ));
    }
    let mut v = Violations::new();
    let number = account_number(Some(customer), &trigger.settings.account_number_field, &mut v);
    if customer.status.trim().is_empty() {
        v.add("customer.status", "required: the customer's new CRM status, e.g. `current`");
    }
    v.into_result()?;
    let desired = trigger.settings.status_map.map(&customer.status);
    Ok(StatusChange { number, desired, provider: Arc::clone(&trigger.inner.provider) })
}

/// Records the change as the customer's latest desired status inside the caller's transaction,
/// claiming its delivery when no other delivery holds the customer.
pub async fn record(
    conn: &mut PgConnection,
    state: &AppState,
    tenant: &str,
    change: &StatusChange,
) -> Result<Option<Claimed>, sqlx::Error> {
    let lease = Lease { length: LEASE, owner: state.instance };
    store::record_desired(conn, tenant, &change.number, change.desired, lease).await
}

/// After the commit: delivers a claimed change now, in the background (a vendor outage leaves it
/// to the follow-up worker, as for SetCustomerStatus).
pub fn deliver_soon(state: &AppState, change: StatusChange, claimed: Claimed) {
    let state = state.clone();
    tokio::spawn(async move {
        let report = Report::of(&state, &claimed.tenant);
        let delivered =
            reconciler::deliver_recorded(&state.db, change.provider.as_ref(), &report, claimed, state.instance).await;
        if let Err(e) = delivered {
            tracing::info!(error = %e, account = %change.number, "an inbound status change was not delivered now");
        }
    });
}
