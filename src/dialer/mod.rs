//! DialerService: agents, dial lists and lead export on a tenant's call-centre dialer.
//!
//! - [`grpc`]: the service's gRPC edge (the only place that sees generated types);
//! - [`provider`]: what a dialer vendor must do, in domain terms, and its errors;
//! - [`validate`]: the dialer document's field rules, checked before any vendor call;
//! - [`export`]: the lead-export pipeline (bounded, streaming, resumable by request_id);
//! - [`store`]: its PostgreSQL tables;
//! - [`vicidial_family`]: what the VICIdial family's vendors share on the wire (answer lines,
//!   secret scrubbing, the characters they strip);
//! - [`elision`]: Elision's dialer API;
//! - [`vicidial`]: stock VICIdial's non-agent API;
//! - [`area`]: the area's key and its providers' list.
//!
//! This file only composes: [`AREA`] is everything the area brings to the server. No file of
//! the area imports it (dependencies point down: `tests/module_graph.rs`).

pub mod area;
pub mod elision;
pub mod export;
pub mod grpc;
pub mod provider;
pub mod store;
pub mod validate;
pub mod vicidial;
pub mod vicidial_family;

pub use area::{DialerArea, TRIGGERS};

use crate::{
    platform::{AppState, AreaSpec, GrpcServices},
    proto::v1::dialer_service_server::DialerServiceServer,
};

/// Everything this area brings to the server.
pub static AREA: AreaSpec = AreaSpec {
    name: "dialer",
    triggers: Some(&TRIGGERS),
    grpc: |state: &AppState, services: &mut GrpcServices| {
        services.add(DialerServiceServer::new(grpc::DialerGrpc::new(state.clone())))
    },
    routes: AreaSpec::no_routes,
    // Its exports live under the platform's idempotency keys, purged with them.
    workers: AreaSpec::no_workers,
};
