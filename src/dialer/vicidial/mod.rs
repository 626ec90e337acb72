//! Stock VICIdial's non-agent API (`non_agent_api.php`): everything that knows its wire format
//! lives here: the client, the tenant keys and the simulator. What it shares with Elision (the
//! family's answer lines, scrubbing, stripped characters) is in `dialer::vicidial_family`.

pub mod client;
pub mod config;
#[cfg(feature = "simulators")]
pub mod sim;
pub mod wire;

use std::sync::Arc;

pub use client::VicidialClient;
#[cfg(feature = "simulators")]
pub use sim::VicidialSim;

use super::provider::DialerProvider;
use crate::registry::provider::ProviderSpec;

/// The registration line: `provider: vicidial`.
pub const PROVIDER: ProviderSpec<Arc<dyn DialerProvider>> = ProviderSpec {
    name: "vicidial",
    validate: config::validate,
    schema: |generator| generator.subschema_for::<config::VicidialConfig>(),
    simulator: simulator!(sim::DEMO),
};
