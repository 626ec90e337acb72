//! patchbay: a multi-tenant gRPC gateway from an ISP's CRM and microservices to the vendors of
//! hosted voice (AccountService), call-centre dialers (DialerService) and phone-number
//! provisioning (ProvisioningService).
//!
//! The layers, each importing only those before it (checked by `tests/module_graph.rs`):
//! - [`proto`]: the generated gRPC types;
//! - [`ops`]: the error model, auth, metrics, retries, paging, the vendor-call layer;
//! - [`store`]: the database, idempotency keys, the audit trail;
//! - [`registry`]: tenant files in, validated and built tenants out; the `Area`/`ProviderSpec` traits;
//! - [`platform`]: the shared state, the edge preamble of every call, what an area brings;
//! - [`sim`]: what every vendor simulator shares (the `simulators` feature);
//! - the areas: [`account`], [`dialer`], [`provisioning`] (each with its vendors in subfolders)
//!   and [`admin`] (RegistryService);
//! - [`events`]: the CRM's inbound triggers and the outbound webhooks (above the areas it drives);
//! - [`server`] (listeners and workers, walking the areas) and [`app`] (the list of areas, and
//!   `App`, which builds and runs everything; `main`, the tests and the benches all use it).

/// `Some(sim)` in a build with the vendor simulators, `None` without (the tokens are dropped, so
/// the simulator's path need not exist): a provider spec's `simulator` field.
#[cfg(feature = "simulators")]
macro_rules! simulator {
    ($sim:expr) => {
        Some($sim)
    };
}
#[cfg(not(feature = "simulators"))]
macro_rules! simulator {
    ($sim:expr) => {
        None
    };
}

/// mimalloc for every binary built on this crate (the server, the tests, the benches): tenant
/// loads and every call allocate many small, short-lived values (YAML nodes, JSON, protobuf), where
/// it is markedly faster than glibc's allocator and returns freed memory to the system promptly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod proto;

pub mod ops;
pub mod store;

pub mod registry;

pub mod platform;
#[cfg(feature = "simulators")]
pub mod sim;

pub mod account;
pub mod admin;
pub mod dialer;
pub mod events;
pub mod provisioning;

pub mod app;
pub mod server;

pub use app::{App, AppError, Settings};
pub use platform::AppState;
