//! The test harness: the real `App` on free ports with its own fresh database and its own
//! providers directory, and typed gRPC clients that talk to it over a real socket.
//!
//! One private PostgreSQL cluster per test binary (or the server named by `DATABASE_URL`), one
//! database per test.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use patchbay::{
    App, AppError, AppState, Settings,
    ops::auth::TokenHash,
    proto::v1::{self as pb, registry_service_client::RegistryServiceClient},
    registry::SimHost,
    store::{DatabaseConfig, EmbeddedOptions, EmbeddedPostgres},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Request,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

/// The token the shipped demo tenant accepts.
pub const DEMO_TOKEN: &str = "demo-token";
/// The admin token every test server accepts for RegistryService.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The repository's own `providers.d/demo.yaml`.
pub fn demo_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.d/demo.yaml")).unwrap()
}

/// A minimal valid tenant file accepting `token`.
pub fn tenant_yaml(tenant: &str, token: &str) -> String {
    format!("tenant: {tenant}\naccess:\n  tokens: [\"{}\"]\n", TokenHash::of_token(token))
}

struct Cluster {
    admin_url: String,
    _pg: Option<Mutex<EmbeddedPostgres>>,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return Cluster { admin_url: url, _pg: None };
        }
        let root = std::env::temp_dir().join("patchbay-tests");
        std::fs::create_dir_all(&root).unwrap();
        remove_stale_clusters(&root);
        // As root, PostgreSQL runs as `postgres`, which must traverse every folder above its data.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = root.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let mut opts = EmbeddedOptions::new(&dir);
        opts.durable = false;
        opts.max_connections = 500;
        let pg = EmbeddedPostgres::start(&opts).unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"));
        Cluster { admin_url: pg.url("postgres"), _pg: Some(Mutex::new(pg)) }
    })
}

/// Clusters of test runs that have ended (their process is gone) are deleted.
fn remove_stale_clusters(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let alive = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()).is_some_and(|pid| {
            // SAFETY: signal 0 only checks that the process exists.
            unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
        });
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh, empty database; returns its URL.
pub async fn fresh_database() -> String {
    let admin_url = tokio::task::spawn_blocking(|| cluster().admin_url.clone()).await.unwrap();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    patchbay::store::create_database_if_missing(&admin_url, &name).await.unwrap();
    let mut url: reqwest::Url = admin_url.parse().unwrap();
    url.set_path(&name);
    url.to_string()
}

/// How to start a test server.
pub struct TestAppBuilder {
    files: Vec<(String, String)>,
    database_url: Option<String>,
    providers_dir: Option<tempfile::TempDir>,
    serve_valid_tenants_only: bool,
    tls: Option<patchbay::ops::tls::TlsFiles>,
    limits: Option<patchbay::platform::Limits>,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAppBuilder {
    pub fn new() -> Self {
        Self {
            files: Vec::new(),
            database_url: None,
            providers_dir: None,
            serve_valid_tenants_only: false,
            tls: None,
            limits: None,
        }
    }

    /// Adds `providers.d/<name>` with `text`.
    pub fn file(mut self, name: &str, text: impl Into<String>) -> Self {
        self.files.push((name.to_owned(), text.into()));
        self
    }

    /// The repository's demo tenant.
    pub fn demo(self) -> Self {
        self.file("demo.yaml", demo_yaml())
    }

    /// Use this database instead of a fresh one (to restart a server on the same data).
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Reuse a providers directory (to restart a server on the same files).
    pub fn providers_dir(mut self, dir: tempfile::TempDir) -> Self {
        self.providers_dir = Some(dir);
        self
    }

    /// Serves gRPC and the callbacks over TLS (the test's `channel` is then unusable: plaintext).
    pub fn tls(mut self, files: patchbay::ops::tls::TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// The gRPC edge's limits (default: the server's).
    pub fn limits(mut self, limits: patchbay::platform::Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    pub fn serve_valid_tenants_only(mut self) -> Self {
        self.serve_valid_tenants_only = true;
        self
    }

    fn prepare(&mut self) -> (tempfile::TempDir, PathBuf) {
        let dir = self.providers_dir.take().unwrap_or_else(|| tempfile::tempdir().unwrap());
        for (name, text) in &self.files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let path = dir.path().to_path_buf();
        (dir, path)
    }

    /// Builds the app; the error if it does not start.
    pub async fn try_spawn(mut self) -> Result<TestApp, AppError> {
        init_tracing();
        let (dir, path) = self.prepare();
        let database_url = match self.database_url.take() {
            Some(url) => url,
            None => fresh_database().await,
        };
        let mut settings = Settings::new(&path, DatabaseConfig::Url(database_url.clone()));
        settings.grpc_addr = ([127, 0, 0, 1], 0).into();
        settings.http_addr = ([127, 0, 0, 1], 0).into();
        settings.ops_addr = ([127, 0, 0, 1], 0).into();
        settings.admin_tokens = vec![TokenHash::of_token(ADMIN_TOKEN)];
        settings.serve_valid_tenants_only = self.serve_valid_tenants_only;
        settings.reload_debounce = Duration::from_millis(50);
        settings.max_db_connections = 10;
        settings.tls = self.tls.take();
        if let Some(limits) = self.limits {
            settings.limits = limits;
        }
        let app = App::build(settings).await?;
        let grpc_addr = app.grpc_addr();
        let http_addr = app.http_addr();
        let ops_addr = app.ops_addr();
        let state = app.state().clone();
        let sims = app.sims().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{grpc_addr}")).unwrap().connect_lazy();
        Ok(TestApp {
            grpc_addr,
            http_addr,
            ops_addr,
            state,
            sims,
            database_url,
            providers: dir,
            channel,
            stop: Some(tx),
            handle,
        })
    }

    pub async fn spawn(self) -> TestApp {
        self.try_spawn().await.unwrap_or_else(|e| panic!("the test server did not start: {e}"))
    }
}

/// A running server.
pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The operations listener: /healthz, /readyz, /metrics.
    pub ops_addr: SocketAddr,
    pub state: AppState,
    pub sims: std::sync::Arc<SimHost>,
    pub database_url: String,
    pub providers: tempfile::TempDir,
    pub channel: Channel,
    /// Dropping it (with the `TestApp`) stops the server.
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), AppError>>,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::new()
    }

    pub fn providers_dir(&self) -> &Path {
        self.providers.path()
    }

    pub fn registry_client(&self) -> RegistryServiceClient<Channel> {
        RegistryServiceClient::new(self.channel.clone())
    }

    /// GetTenant, as the admin.
    pub async fn tenant_view(&self, tenant: &str) -> Result<pb::Tenant, tonic::Status> {
        let req = pb::GetTenantRequest { tenant: tenant.into() };
        self.registry_client().get_tenant(authed(req, ADMIN_TOKEN)).await.map(tonic::Response::into_inner)
    }

    /// ValidateConfig of `yaml` under `file_name`, as the admin.
    pub async fn validate_config(&self, file_name: &str, yaml: String) -> pb::ValidateConfigResponse {
        let req = pb::ValidateConfigRequest { yaml, file_name: file_name.into() };
        self.registry_client().validate_config(authed(req, ADMIN_TOKEN)).await.unwrap().into_inner()
    }

    /// One page of ListAuditEvents, as the admin.
    pub async fn audit_events(&self, req: pb::ListAuditEventsRequest) -> Vec<pb::AuditEvent> {
        self.registry_client().list_audit_events(authed(req, ADMIN_TOKEN)).await.unwrap().into_inner().events
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// A URL on the operations listener.
    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops_addr)
    }

    /// Resolves once the registry finishes a reload pass that started after this call.
    pub fn next_reload(&self) -> impl std::future::Future<Output = ()> + use<> {
        let mut rx = self.state.registry.subscribe();
        rx.borrow_and_update();
        async move {
            tokio::time::timeout(Duration::from_secs(10), rx.changed()).await.expect("a reload within 10 s").unwrap();
        }
    }

    /// Stops gracefully; returns the providers directory and database for a restart.
    pub async fn stop(mut self) -> (tempfile::TempDir, String) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.handle).await;
        result.expect("the server stops within 30 s").unwrap().expect("the server stops cleanly");
        (self.providers, self.database_url)
    }
}

/// Logs go to the test's captured output (shown when it fails); `RUST_LOG` as usual.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
    req
}

/// The ErrorInfo reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// The BadRequest field paths of a status.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// A `patchbay serve` child process on `database_url`, serving the tenant files of `providers`,
/// for tests that kill it with SIGKILL.
pub struct ServeProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>` of its gRPC listener.
    pub grpc: String,
}

impl ServeProcess {
    /// Starts it and waits until `/readyz` answers 200 (blocking: call from `spawn_blocking`).
    pub fn start(providers: &Path, database_url: &str) -> Self {
        let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (grpc, http, ops) = (port(), port(), port());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_patchbay"))
            .args(["serve", "--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--ops-addr", &format!("127.0.0.1:{ops}")])
            .arg("--providers-dir")
            .arg(providers)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let ready = format!("http://127.0.0.1:{ops}/readyz");
        while reqwest::blocking::get(&ready).map(|r| r.status()).ok() != Some(reqwest::StatusCode::OK) {
            assert!(std::time::Instant::now() < deadline, "patchbay serve did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, grpc: format!("http://127.0.0.1:{grpc}") }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
