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
    /// How much the gRPC edge takes on at once, and how long a call may run.
    pub limits: Limits,
    /// The public listeners' TLS, when configured (re-read on SIGHUP and ReloadConfig).
    pub tls: Option<Arc<crate::ops::tls::Tls>>,
    pub admin_tokens: Arc<[TokenHash]>,
    /// Cancelled when the server shuts down: background workers and streams stop on it.
    pub shutdown: CancellationToken,
    /// Audit rows the database could not take yet (`store::audit::Backlog`).
    pub audit_backlog: crate::store::audit::Backlog,
    /// Wakes the webhook delivery worker after a commit to the outbox.
    pub outbox: super::outbox::Outbox,
    /// Refused vendor credentials the vendor clients reported (`tenant.credentials_refused`).
    pub refusals: crate::ops::vendor::CredentialRefusals,
}

/// The gRPC edge's limits (see `server.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls served at once; one more is refused at once with RESOURCE_EXHAUSTED and RetryInfo
    /// (load shedding), never queued without bound.
    pub max_concurrent_calls: usize,
    /// The deadline of a unary call that brings none (a stream has none unless it brings one).
    pub default_deadline: std::time::Duration,
    /// Connections each listener holds at once (`ops::conn`): gRPC, the public HTTP listener
    /// (vendor callbacks), the operations listener. Together well below the usual 1,024 file
    /// descriptors, leaving room for the database pool and vendor connections.
    pub grpc_connections: usize,
    pub http_connections: usize,
    pub ops_connections: usize,
    /// An HTTP connection (callbacks, ops) that sends and receives nothing this long is closed.
    pub http_idle: std::time::Duration,
    /// Serve without the edge's layers: no call metrics or spans, no concurrency limit or
    /// default deadline, vendor calls neither counted, traced nor limited per tenant. Only for
    /// measuring what those layers cost (`PATCHBAY_BARE_EDGE`, benches/account.rs); never in
    /// production, where they are what keeps the server observable and safe under load.
    pub bare: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 512,
            default_deadline: std::time::Duration::from_secs(60),
            grpc_connections: 512,
            http_connections: 256,
            ops_connections: 32,
            http_idle: std::time::Duration::from_secs(60),
            bare: false,
        }
    }
}
