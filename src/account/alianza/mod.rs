//! Alianza Cloud Voice (REST API v2): everything that knows its wire format.
//!
//! - [`config`]: the `triggers.account` keys of an `provider: alianza` tenant, validated purely.
//! - [`client`]: the HTTP client (sessions, retries, error bodies).
//! - [`wire`]: Alianza's JSON; `convert`: that JSON as the area's domain types.
//! - [`sim`]: a simulator of the API, for tests, benches and `api_url: simulator`.

pub mod client;
pub mod config;
mod convert;
#[cfg(feature = "simulators")]
pub mod sim;
pub mod wire;

pub use client::AlianzaClient;
#[cfg(feature = "simulators")]
pub use sim::AlianzaSim;

use super::trigger::AccountTrigger;
use crate::registry::provider::ProviderSpec;

/// The registration line of the `alianza` provider.
pub const SPEC: ProviderSpec<AccountTrigger> = ProviderSpec {
    name: client::PROVIDER,
    validate: config::validate,
    schema: config::schema,
    simulator: simulator!(sim::DEMO),
};
