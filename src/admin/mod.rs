//! RegistryService: the operators' gRPC view of the registry (tenants, validation, reloads) and
//! of the audit trail. Callers need an admin token; tenants configure nothing here.

pub mod grpc;

use crate::{
    platform::{AppState, AreaSpec, GrpcServices},
    proto::v1::registry_service_server::RegistryServiceServer,
};

/// Everything this area brings to the server: one gRPC service.
pub static AREA: AreaSpec = AreaSpec {
    name: "admin",
    triggers: None,
    grpc: |state: &AppState, services: &mut GrpcServices| {
        services.add(RegistryServiceServer::new(grpc::RegistryGrpc::new(state.clone())))
    },
    routes: AreaSpec::no_routes,
    workers: AreaSpec::no_workers,
};
