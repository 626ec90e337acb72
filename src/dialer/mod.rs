//! DialerService: agents, dial lists and lead export on a tenant's call-centre dialer.
//!
//! - [`grpc`]: the service's gRPC edge (the only place that sees generated types);
//! - [`provider`]: what a dialer vendor must do, in domain terms, and its errors;
//! - [`validate`]: the dialer document's field rules, checked before any vendor call;
//! - [`export`]: the lead-export pipeline (bounded, streaming, resumable by request_id);
//! - [`store`]: its PostgreSQL tables;
//! - [`elision`]: the first vendor.

pub mod elision;
pub mod export;
pub mod grpc;
pub mod provider;
pub mod store;
pub mod validate;

use std::sync::Arc;

use crate::{
    platform::{AppState, AreaSpec, GrpcServices, periodic},
    proto::v1::dialer_service_server::DialerServiceServer,
    registry::{Area, AreaEntry, provider::ProviderSpec},
};

/// `triggers.dialer` of a tenant file.
pub struct DialerArea;

/// The dialer area's providers, one line each.
static PROVIDERS: &[ProviderSpec<Arc<dyn provider::DialerProvider>>] = &[elision::PROVIDER];

impl Area for DialerArea {
    const KEY: &'static str = "dialer";
    type Trigger = Arc<dyn provider::DialerProvider>;

    fn providers() -> &'static [ProviderSpec<Self::Trigger>] {
        PROVIDERS
    }
}

/// The area's `triggers:` key and providers, for the registry.
pub static TRIGGERS: AreaEntry = AreaEntry::of::<DialerArea>();

/// Everything this area brings to the server.
pub static AREA: AreaSpec = AreaSpec {
    name: "dialer",
    triggers: Some(&TRIGGERS),
    grpc: |state: &AppState, services: &mut GrpcServices| {
        services.add(DialerServiceServer::new(grpc::DialerGrpc::new(state.clone())))
    },
    routes: AreaSpec::no_routes,
    workers: |state: &AppState| {
        vec![periodic::spawn(state, "expired dialer exports", periodic::HOURLY, |db| async move {
            store::purge_expired(&db).await
        })]
    },
};
