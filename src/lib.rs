//! patchbay: a multi-tenant gRPC gateway from an ISP's CRM and microservices to the vendors of
//! hosted voice (AccountService), call-centre dialers (DialerService) and phone-number
//! provisioning (ProvisioningService).
//!
//! [`app::App`] builds and runs everything; `main`, the tests and the benches all use it.

pub mod app;
// Service areas, each with its vendors in subfolders:
pub mod account;

pub mod dialer;

pub mod provisioning;

pub mod ops;
pub mod proto;
pub mod registry;
pub mod server;
pub mod sim;
pub mod store;

pub use app::{App, AppError, AppState, Settings};
