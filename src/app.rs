//! The application: the list of service areas, and everything `patchbay serve` runs, built once
//! and driven by `main`, the tests and the benches alike (zero-to-production's `App::build` /
//! `run_until_stopped`). This is the top of the module graph: nothing imports it but `main`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    account, admin, dialer, events,
    ops::{auth::TokenHash, metrics::Metrics},
    platform::{AppState, AreaSpec, Limits},
    provisioning,
    registry::{
        self, AreaEntry, Areas, BuildContext, Diagnostic, Registry, SimHost, provider::DemoSim, secrets::SystemSecrets,
    },
    server,
    store::{Database, DatabaseConfig, StoreError},
};

/// The service areas this server runs, one line each. An area lists its own providers.
pub static AREAS: &[&AreaSpec] = &[&account::AREA, &dialer::AREA, &provisioning::AREA, &admin::AREA, &events::AREA];

/// The areas tenants configure under `triggers:`, for the registry, `validate` and `schema`.
pub fn trigger_areas() -> Areas {
    AREAS.iter().filter_map(|a| a.triggers).collect::<Vec<&'static AreaEntry>>().into()
}

/// Every provider's stand-alone simulator (`patchbay sim <name>`), by provider name.
/// Besides the vendors', the receiver of patchbay's own webhooks (the CRM's side).
pub fn simulators() -> Vec<(&'static str, DemoSim)> {
    let sims = AREAS.iter().filter_map(|a| a.triggers).flat_map(|t| (t.simulators)());
    #[cfg(feature = "simulators")]
    let sims = sims.chain([("webhook-receiver", events::receiver::DEMO)]);
    sims.collect()
}

/// The JSON Schema of a tenant file (`patchbay schema`).
pub fn tenant_file_schema() -> serde_json::Value {
    registry::file::json_schema(&trigger_areas())
}

/// Server settings (flags and environment of `patchbay serve`, see `main.rs`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listener (`PATCHBAY_GRPC_ADDR`); port 0 picks a free port.
    pub grpc_addr: SocketAddr,
    /// The public HTTP listener: vendor callbacks only (`PATCHBAY_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// The operations listener: `/healthz`, `/readyz`, `/metrics` (`PATCHBAY_OPS_ADDR`). Kept
    /// apart from the public one, which vendors must reach, so that it can stay on a private
    /// interface.
    pub ops_addr: SocketAddr,
    /// Tenant files (`PATCHBAY_PROVIDERS_DIR`).
    pub providers_dir: PathBuf,
    /// `DATABASE_URL`, or the private cluster under `PATCHBAY_DATA_DIR`.
    pub database: DatabaseConfig,
    /// Tokens allowed to call RegistryService (`PATCHBAY_ADMIN_TOKENS`).
    pub admin_tokens: Vec<TokenHash>,
    /// Start even if some tenant files are invalid, serving the valid ones.
    pub serve_valid_tenants_only: bool,
    /// Watch `providers_dir` and reload changed files.
    pub watch: bool,
    /// How long the directory must be quiet before a reload (editors write in bursts).
    pub reload_debounce: Duration,
    /// The URL vendors reach the HTTP listener at (`PATCHBAY_PUBLIC_URL`); default: its bound address.
    pub public_url: Option<String>,
    /// The database pool's size (`PATCHBAY_DB_MAX_CONNECTIONS`).
    pub max_db_connections: u32,
    /// TLS on the gRPC and callback listeners (`PATCHBAY_TLS_CERT`, `_KEY`, `_CLIENT_CA`);
    /// `None`: plaintext, for the local demo.
    pub tls: Option<crate::ops::tls::TlsFiles>,
    /// The gRPC edge's limits (`PATCHBAY_MAX_CONCURRENT_CALLS`, `PATCHBAY_DEFAULT_DEADLINE_MS`).
    pub limits: Limits,
    /// Vendor HTTP calls one tenant may have in flight at once (`PATCHBAY_TENANT_VENDOR_IN_FLIGHT`):
    /// one tenant's burst cannot take every connection to the vendors.
    pub tenant_vendor_in_flight: usize,
}

impl Settings {
    /// Defaults for everything but where the tenants and the database are.
    pub fn new(providers_dir: impl Into<PathBuf>, database: DatabaseConfig) -> Self {
        Self {
            grpc_addr: ([127, 0, 0, 1], 50051).into(),
            http_addr: ([127, 0, 0, 1], 8080).into(),
            ops_addr: ([127, 0, 0, 1], 9090).into(),
            providers_dir: providers_dir.into(),
            database,
            admin_tokens: Vec::new(),
            serve_valid_tenants_only: false,
            watch: true,
            reload_debounce: Duration::from_millis(250),
            public_url: None,
            max_db_connections: 20,
            tls: None,
            limits: Limits::default(),
            tenant_vendor_in_flight: 32,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] crate::ops::tls::TlsError),
    #[error("{} problem(s) in {}; fix them or start with --serve-valid-tenants-only", .0.len(), .1.display())]
    InvalidTenants(Vec<Diagnostic>, PathBuf),
    #[error("cannot watch {dir} for changes: {source}")]
    Watch {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("the HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// A built server: listeners bound, database open, tenants loaded. Nothing served until run.
pub struct App {
    state: AppState,
    database: Database,
    grpc: TcpListener,
    http: TcpListener,
    ops: TcpListener,
    sims: Arc<SimHost>,
    watcher: Option<JoinHandle<()>>,
    farewells: TaskTracker,
}

/// How long a stopping server waits for its vendor clients' logouts.
const FAREWELL_GRACE: Duration = Duration::from_secs(2);

impl App {
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        // Certificates first: a bad file stops the start before anything listens.
        let tls = settings.tls.clone().map(crate::ops::tls::Tls::load).transpose()?;
        let grpc = bind("gRPC", settings.grpc_addr).await?;
        let http_listener = bind("HTTP", settings.http_addr).await?;
        let ops = bind("ops", settings.ops_addr).await?;
        let http_addr = http_listener.local_addr().map_err(|source| AppError::Bind {
            what: "HTTP",
            addr: settings.http_addr,
            source,
        })?;
        let database = Database::open(&settings.database, settings.max_db_connections).await?;

        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("patchbay/", env!("CARGO_PKG_VERSION")))
            // A vendor API never redirects; a redirect means a wrong `api_url` (http for https, an
            // old host), and following it would turn a POST into a GET without its body.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS backend is compiled in");
        let sims = Arc::new(SimHost::new());
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
        let metrics = Metrics::new();
        let farewells = TaskTracker::new();
        let refusals = crate::ops::vendor::CredentialRefusals::default();
        let build = BuildContext {
            http: http.clone(),
            metrics: metrics.clone(),
            sims: Arc::clone(&sims),
            http_base_url: public_url,
            farewells: farewells.clone(),
            vendor_in_flight: settings.tenant_vendor_in_flight,
            refusals: refusals.clone(),
            bare: settings.limits.bare,
        };
        let registry = Registry::new(&settings.providers_dir, trigger_areas(), build, Arc::new(SystemSecrets));
        let report = registry
            .load(!settings.serve_valid_tenants_only)
            .map_err(|d| AppError::InvalidTenants(d, settings.providers_dir.clone()))?;
        tracing::info!(
            tenants = registry.tenant_count(),
            problems = report.diagnostics.len(),
            dir = %settings.providers_dir.display(),
            "tenants loaded"
        );

        let shutdown = CancellationToken::new();
        // The watch is in place when `build` returns: a file changed after that is seen.
        let watcher = if settings.watch {
            let stop = shutdown.clone().cancelled_owned();
            Some(
                registry::watch::spawn(registry.clone(), settings.reload_debounce, stop)
                    .await
                    .map_err(|source| AppError::Watch { dir: settings.providers_dir.clone(), source })?,
            )
        } else {
            None
        };
        let state = AppState {
            registry,
            db: database.pool.clone(),
            http,
            metrics,
            instance: database.instance(),
            limits: settings.limits,
            tls,
            admin_tokens: settings.admin_tokens.clone().into(),
            shutdown,
            audit_backlog: Default::default(),
            outbox: Default::default(),
            refusals,
        };
        Ok(Self { state, database, grpc, http: http_listener, ops, sims, watcher, farewells })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("a bound listener has an address")
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The in-process vendor simulators that tenants with `api_url: simulator` use.
    pub fn sims(&self) -> &Arc<SimHost> {
        &self.sims
    }

    /// Serves until SIGINT or SIGTERM; SIGHUP reloads every tenant file.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        let registry = self.state.registry.clone();
        let tls = self.state.tls.clone();
        let hup = tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading every tenant file");
                let registry = registry.clone();
                let _ = tokio::task::spawn_blocking(move || registry.reload_all()).await;
                if let Some(tls) = &tls
                    && let Err(e) = tls.reload()
                {
                    tracing::error!(error = %e, "SIGHUP: the TLS files could not be used; the certificate in service stays");
                }
            }
        });
        let result = self.run_until(shutdown_signal()).await;
        hup.abort();
        result
    }

    /// Serves until `stop` resolves, then shuts down gracefully: stop accepting, let in-flight
    /// calls finish, stop the workers, close the database (and stop the private cluster).
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let Self { state, database, grpc, http, ops, sims, watcher, farewells } = self;
        let shutdown = state.shutdown.clone();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                stop.await;
                tracing::info!("shutting down: finishing in-flight calls");
                shutdown.cancel();
            }
        });
        let workers = server::spawn_workers(&state, AREAS);

        tracing::info!(
            grpc = %grpc.local_addr().map_err(AppError::Http)?,
            http = %http.local_addr().map_err(AppError::Http)?,
            ops = %ops.local_addr().map_err(AppError::Http)?,
            "patchbay serving"
        );
        let grpc_server = server::serve_grpc(state.clone(), AREAS, grpc, shutdown.clone().cancelled_owned());
        let http_server = server::serve_http(state.clone(), AREAS, http, shutdown.clone().cancelled_owned());
        let ops_server = server::serve_ops(state.clone(), ops, shutdown.clone().cancelled_owned());
        let (grpc_result, http_result, ops_result) = tokio::join!(grpc_server, http_server, ops_server);
        // Either server ending (an error) ends the other too.
        shutdown.cancel();
        for worker in workers {
            let _ = worker.await;
        }
        if let Some(watcher) = watcher {
            let _ = watcher.await;
        }
        // Vendor sessions end with the server (Alianza logs out), not hours later; the
        // simulators stay up until then.
        state.registry.retire_all();
        farewells.close();
        if tokio::time::timeout(FAREWELL_GRACE, farewells.wait()).await.is_err() {
            tracing::warn!("some vendor logouts did not finish within {FAREWELL_GRACE:?}");
        }
        drop(sims);
        drop(state);
        database.close().await;
        grpc_result?;
        http_result.map_err(AppError::Http)?;
        ops_result.map_err(AppError::Http)?;
        tracing::info!("patchbay stopped");
        Ok(())
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { what, addr, source })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
