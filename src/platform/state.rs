//! The shared state: what every handler and worker uses. Its methods (authorizing a call) are the
//! edge preamble, in [`super::call`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::{
    ops::{auth::TokenHash, metrics::Metrics},
    registry::Registry,
};

/// What every handler and worker shares. Cheap to clone. No global state: this is handed down.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub db: sqlx::PgPool,
    /// The one pooled HTTP client of the process.
    pub http: reqwest::Client,
    pub metrics: Metrics,
    /// This process's instance key (`store::instance`): the owner of its leases.
    pub instance: i64,
    /// The public listeners' TLS, when configured (re-read on SIGHUP and ReloadConfig).
    pub tls: Option<Arc<crate::ops::tls::Tls>>,
    pub admin_tokens: Arc<[TokenHash]>,
    /// Cancelled when the server shuts down: background workers and streams stop on it.
    pub shutdown: CancellationToken,
}
