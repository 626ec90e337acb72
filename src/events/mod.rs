//! Events in and out (a tenant file's `events:`): the CRM's HTTP triggers drive the services
//! ([`inbound`]), and the outbox the areas write in their own transactions is delivered to the
//! tenant's webhook endpoints ([`deliver`]), with `tenant.reload_failed` ([`reload`]) and
//! `tenant.credentials_refused` ([`credentials`]) reported from what the registry and the vendor
//! clients saw.
//!
//! Above the areas: an inbound action is carried out by its area (`account::inbound`), while the
//! areas report their events through `platform::events`, below them.

mod credentials;
pub mod deliver;
pub mod inbound;
#[cfg(feature = "simulators")]
pub mod receiver;
mod reload;

use std::time::Duration;

use crate::{
    platform::{AppState, AreaSpec, periodic},
    store::outbox,
};

/// How long finished deliveries and inbound events are kept (for the operator's view and to
/// recognise a repeated event id).
pub const KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Rows deleted per housekeeping run, at most (runs are hourly).
const PRUNE_LIMIT: i64 = 50_000;

/// Everything this area brings: the trigger routes and the delivery workers.
pub static AREA: AreaSpec = AreaSpec {
    name: "events",
    triggers: None,
    grpc: |_, _| {},
    routes: inbound::routes,
    workers: |state: &AppState| {
        vec![
            deliver::spawn(state.clone()),
            reload::spawn(state.clone()),
            credentials::spawn(state.clone()),
            periodic::spawn(state, "pruning old webhook deliveries", periodic::HOURLY, |db| async move {
                outbox::prune(&db, KEPT_FOR, PRUNE_LIMIT).await
            }),
            periodic::spawn(state, "pruning old inbound events", periodic::HOURLY, |db| async move {
                inbound::store::prune(&db, KEPT_FOR, PRUNE_LIMIT).await
            }),
        ]
    },
};
