//! AccountService: hosted-voice accounts as the CRM's customer page uses them: the status panel,
//! account creation, SIP-line sync into the CRM's custom table, the automatic status follow-up and
//! deletion.
//!
//! - [`provider`]: the contract every vendor implements, and the domain types.
//! - [`settings`]: what the area needs from `triggers.account` whatever the vendor.
//! - [`sip_sync`]: the pure plan of a FULL / ADD_ONLY sync.
//! - [`sip_refresh`]: runs a sync (for SyncSipLines and, durably, for the CRM's triggers).
//! - [`store`]: the SIP table and the follow-ups' queues in PostgreSQL.
//! - [`reconciler`]: delivers desired statuses, now or later (the background worker).
//! - [`follow_up`]: the loop and retry policy both follow-ups share.
//! - [`inbound`]: what the CRM's inbound triggers (the events area) can ask of the area.
//! - [`grpc`]: the gRPC edge; generated types stop there.
//! - [`alianza`]: the first vendor (client, wire format, config, simulator).
//! - [`trigger`]: what a tenant holds for the area; [`area`]: its key and its providers' list.
//!
//! This file only composes: [`AREA`] is everything the area brings to the server. No file of
//! the area imports it (dependencies point down: `tests/module_graph.rs`).

pub mod alianza;
pub mod area;
pub mod follow_up;
pub mod grpc;
pub mod inbound;
pub mod provider;
pub mod reconciler;
pub mod settings;
pub mod sip_refresh;
pub mod sip_sync;
pub mod store;
pub mod trigger;

pub use area::{AccountArea, TRIGGERS};
pub use provider::AccountProvider;
pub use settings::AccountSettings;
pub use trigger::AccountTrigger;

use crate::{
    platform::{AppState, AreaSpec, GrpcServices},
    proto::v1::account_service_server::AccountServiceServer,
};

/// Everything this area brings to the server.
pub static AREA: AreaSpec = AreaSpec {
    name: "account",
    triggers: Some(&TRIGGERS),
    grpc: |state: &AppState, services: &mut GrpcServices| {
        services.add(AccountServiceServer::new(grpc::AccountGrpc::new(state.clone())))
    },
    routes: AreaSpec::no_routes,
    workers: |state: &AppState| vec![reconciler::spawn(state.clone()), sip_refresh::spawn(state.clone())],
};
