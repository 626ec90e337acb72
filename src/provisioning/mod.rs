//! ProvisioningService: phone-number orders, customer updates and number types, through the
//! tenant's provider (first: Delacon).
//!
//! - [`provider`]: the provider trait and the domain types;
//! - [`grpc`]: the gRPC edge (validation, idempotency, audit, errors);
//! - [`store`]: orders and their history in PostgreSQL, the callback inbox;
//! - [`watch`]: the order watch hub (LISTEN/NOTIFY) behind WatchOrder;
//! - [`callbacks`]: the providers' order callbacks on the HTTP listener, applied and audited;
//! - [`delacon`]: the Delacon client, its callbacks' wire format and its simulator;
//! - [`trigger`]: what a tenant holds for the area (with its number-type cache); [`area`]: the
//!   area's key and its providers' list.
//!
//! This file composes: [`AREA`] is everything the area brings to the server. No file of the
//! area imports it (dependencies point down: `tests/module_graph.rs`).

pub mod area;
pub mod callbacks;
pub mod delacon;
pub mod grpc;
pub mod provider;
pub mod store;
pub mod trigger;
pub mod watch;

use std::time::Duration;

pub use area::{ProvisioningArea, TRIGGERS};
pub use trigger::{NUMBER_TYPES_TTL, ProvisioningTrigger};

use crate::{
    platform::{AppState, AreaSpec, GrpcServices, periodic},
    proto::v1::provisioning_service_server::ProvisioningServiceServer,
};

/// Everything this area brings to the server.
pub static AREA: AreaSpec = AreaSpec {
    name: "provisioning",
    triggers: Some(&TRIGGERS),
    grpc: |state: &AppState, services: &mut GrpcServices| {
        services.add(ProvisioningServiceServer::new(grpc::ProvisioningGrpc::new(state.clone())))
    },
    routes: callbacks::routes,
    workers: |state: &AppState| vec![spawn_sweeper(state)],
};

/// How often overdue submissions and expired held callbacks are swept.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(15);

/// The sweeper: overdue submissions become `unknown`, expired held callbacks go (see
/// [`store::sweep`]). Every replica runs one; the statements are idempotent.
pub fn spawn_sweeper(state: &AppState) -> tokio::task::JoinHandle<()> {
    periodic::spawn(state, "provisioning sweep", SWEEP_PERIOD, |db| async move {
        let swept = store::sweep(&db).await?;
        if swept != store::Swept::default() {
            tracing::warn!(
                overdue_submissions = swept.overdue_submissions,
                expired_held_callbacks = swept.expired_callbacks,
                "provisioning sweep: submissions whose answer never came are now of unknown outcome"
            );
        }
        Ok::<u64, sqlx::Error>(swept.overdue_submissions + swept.expired_callbacks)
    })
}
