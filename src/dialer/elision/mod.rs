//! Elision's dialer API (a VICIdial-family "non-agent API"): everything that knows its wire
//! format lives here: the client, the answer parsing, the tenant keys and the simulator.

pub mod client;
pub mod config;
#[cfg(feature = "simulators")]
pub mod sim;
pub mod wire;

use std::sync::Arc;

pub use client::ElisionClient;
#[cfg(feature = "simulators")]
pub use sim::ElisionSim;

use super::provider::DialerProvider;
use crate::registry::provider::ProviderSpec;

/// The registration line: `provider: elision`.
pub const PROVIDER: ProviderSpec<Arc<dyn DialerProvider>> = ProviderSpec {
    name: "elision",
    validate: config::validate,
    schema: |generator| generator.subschema_for::<config::ElisionConfig>(),
    simulator: simulator!(sim::DEMO),
};
