//! What a service area brings to the server, as one value: `app.rs` lists the areas, and the
//! server walks that list for the gRPC services, the HTTP routes and the background workers,
//! while the registry walks it for the tenant files' `triggers:` keys and their providers.

use tokio::task::JoinHandle;
use tonic::{codegen::http, server::NamedService, service::RoutesBuilder};

use super::state::AppState;
use crate::registry::AreaEntry;

/// One service area: everything it adds to a running server.
pub struct AreaSpec {
    /// For logs and `patchbay sim`'s listing.
    pub name: &'static str,
    /// Its key under a tenant file's `triggers:` and its providers; `None` for an area tenants do
    /// not configure (RegistryService).
    pub triggers: Option<&'static AreaEntry>,
    /// Adds its gRPC service(s).
    pub grpc: fn(&AppState, &mut GrpcServices),
    /// Its routes on the public HTTP listener (vendor callbacks), if any.
    pub routes: fn(&AppState) -> axum::Router,
    /// Its background workers; each stops when `state.shutdown` is cancelled.
    pub workers: fn(&AppState) -> Vec<JoinHandle<()>>,
}

impl AreaSpec {
    /// For areas without HTTP routes.
    pub fn no_routes(_: &AppState) -> axum::Router {
        axum::Router::new()
    }

    /// For areas without background workers.
    pub fn no_workers(_: &AppState) -> Vec<JoinHandle<()>> {
        Vec::new()
    }
}

/// The served gRPC services and their names (for health and reflection).
#[derive(Default)]
pub struct GrpcServices {
    pub(crate) routes: RoutesBuilder,
    pub(crate) names: Vec<&'static str>,
}

impl GrpcServices {
    /// Serves `svc` (a generated `*ServiceServer`).
    pub fn add<S>(&mut self, svc: S)
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(svc);
    }

    /// The names of the services added so far, e.g. `patchbay.v1.AccountService`.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    pub(crate) fn into_parts(self) -> (RoutesBuilder, Vec<&'static str>) {
        (self.routes, self.names)
    }
}
