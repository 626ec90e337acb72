//! The platform every service area stands on, above the registry and the stores and below the
//! areas: the shared state handed to every handler and worker ([`AppState`]), the edge preamble of
//! every call ([`call`]: authenticate, trigger, idempotency, audit), what an area brings to the
//! server ([`area::AreaSpec`]), and periodic housekeeping.
//!
//! It imports `ops`, `store` and `registry` and nothing above them; the areas import it, and
//! `app.rs` composes the areas on top.

pub mod area;
pub mod call;
pub mod events;
pub mod outbox;
pub mod periodic;
mod state;

pub use area::{AreaSpec, GrpcServices};
pub use call::{Edge, TenantCall};
pub use state::{AppState, Limits};
