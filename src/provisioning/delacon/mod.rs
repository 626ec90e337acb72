//! Delacon, the first provider of ProvisioningService: everything that knows the Delacon
//! Provisioning API's wire format lives in this folder.
//!
//! - [`config`]: the tenant keys (`api_url`, `auth_token`, `callback_secret`), validation, build;
//! - [`client`]: the API client (form-encoded POSTs with the `Auth` header);
//! - [`wire`]: form parameters and JSON answers, with the vendor's spellings;
//! - [`callback`]: Delacon's order callbacks: parsed into an order outcome, answered in its words;
//! - [`sim`]: a simulator of the API, for tests, benches and the demo.

pub mod callback;
pub mod client;
pub mod config;
#[cfg(feature = "simulators")]
pub mod sim;
pub mod wire;

pub use callback::CALLBACK_PREFIX;
pub use client::{DelaconClient, PROVIDER};
#[cfg(feature = "simulators")]
pub use sim::DelaconSim;

use super::trigger::ProvisioningTrigger;
use crate::registry::provider::ProviderSpec;

/// The registration line: `provider: delacon`.
pub const SPEC: ProviderSpec<ProvisioningTrigger> = ProviderSpec {
    name: PROVIDER,
    validate: config::validate,
    schema: |generator| generator.subschema_for::<config::DelaconConfig>(),
    simulator: simulator!(sim::DEMO),
};
