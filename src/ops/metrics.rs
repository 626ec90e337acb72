//! Process metrics, exposed in the Prometheus text format on the operations listener
//! (`GET /metrics`), through `prometheus-client`, the Prometheus project's own Rust client: its
//! encoder escapes every label value and writes the exposition format exactly, and its counters
//! and histograms are lock-free on the hot path.
//!
//! Series are bounded by construction: gRPC labels come only from the methods the server serves
//! (anything else is `unknown`, see `server.rs`), vendor labels from each provider's fixed
//! operation names and the HTTP status (or `timeout` / `error`).
//!
//! | series | what |
//! |---|---|
//! | `grpc_server_started_total{grpc_service,grpc_method,grpc_type}` | calls begun |
//! | `grpc_server_handled_total{...,grpc_code}` | calls ended, by status code (a call the client cancelled or whose deadline passed counts as `CANCELLED` / `DEADLINE_EXCEEDED`) |
//! | `grpc_server_handling_seconds{...}` | histogram of call latency |
//! | `grpc_server_in_flight{...}` | calls under way |
//! | `patchbay_vendor_requests_total{provider,operation,outcome}` | vendor HTTP calls |
//! | `patchbay_vendor_request_duration_seconds{provider,operation}` | histogram of their latency |
//! | `patchbay_tenants`, `patchbay_registry_reloads_total`, `patchbay_registry_reload_failures_total` | the registry |
//! | `patchbay_db_connections{state}` | the pool: `in_use`, `idle` |
//! | `patchbay_build_info{version}` | always 1 |

use std::{
    borrow::Cow,
    collections::HashSet,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::Registry,
};

/// Latency buckets from 0.5 ms to about 16 s (×2): a gateway call, or a vendor's.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A served method, as its labels.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcMethod {
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub grpc_type: &'static str,
}

impl GrpcMethod {
    /// Every path the server does not serve.
    pub const UNKNOWN: Self = Self { grpc_service: "unknown", grpc_method: "unknown", grpc_type: "unknown" };

    /// A method's labels, interned for the life of the process (the served methods: a bounded set).
    pub fn new(service: &str, method: &str, grpc_type: &'static str) -> Self {
        Self { grpc_service: intern(service), grpc_method: intern(method), grpc_type }
    }
}

fn intern(s: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    match names.get(s) {
        Some(name) => name,
        None => {
            let name: &'static str = Box::leak(s.to_owned().into_boxed_str());
            names.insert(name);
            name
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Handled {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_type: &'static str,
    grpc_code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendorOperation {
    provider: &'static str,
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendorOutcome {
    provider: &'static str,
    operation: &'static str,
    outcome: Cow<'static, str>,
}

/// A tenant's vendor calls, by provider and a fixed class of outcome: the tenant label comes from
/// the registry only (a built tenant), and the series of a tenant no longer served are removed
/// ([`Metrics::forget_tenants_except`]), so their number is bounded by the served tenants.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantVendor {
    tenant: String,
    provider: &'static str,
    outcome: &'static str,
}

/// A vendor call's outcome label without an allocation for the answers vendors usually give.
fn static_outcome(outcome: &str) -> Cow<'static, str> {
    const COMMON: [&str; 17] = [
        "200", "201", "202", "204", "400", "401", "403", "404", "409", "422", "429", "500", "502", "503", "504",
        "timeout", "error",
    ];
    match COMMON.iter().find(|c| **c == outcome) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(outcome.to_owned()),
    }
}

/// `ok`, `client_error`, `server_error`, `timeout` or `error`, from a vendor call's outcome.
fn outcome_class(outcome: &str) -> &'static str {
    match outcome.as_bytes().first() {
        Some(b'1' | b'2' | b'3') => "ok",
        Some(b'4') => "client_error",
        Some(b'5') => "server_error",
        _ if outcome == "timeout" => "timeout",
        _ => "error",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventState {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptOutcome {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    started: Family<GrpcMethod, Counter>,
    handled: Family<Handled, Counter>,
    handling: HistogramFamily<GrpcMethod>,
    in_flight: Family<GrpcMethod, Gauge>,
    vendor_requests: Family<VendorOutcome, Counter>,
    vendor_seconds: HistogramFamily<VendorOperation>,
    tenants: Gauge,
    reloads: Counter,
    reload_failures: Counter,
    db_connections: Family<PoolState, Gauge>,
    inbound_events: Family<EventState, Counter>,
    webhook_attempts: Family<AttemptOutcome, Counter>,
    webhook_seconds: Histogram,
    tenant_vendor: Family<TenantVendor, Counter>,
    /// The label sets of `tenant_vendor` by tenant, to remove a tenant's series.
    tenant_series: Mutex<std::collections::HashMap<String, HashSet<TenantVendor>>>,
}

/// The process's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What the registry and the pool say at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub tenants: u64,
    pub reloads: u64,
    pub reload_failures: u64,
    pub db_in_use: u64,
    pub db_idle: u64,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let started = Family::<GrpcMethod, Counter>::default();
        let handled = Family::<Handled, Counter>::default();
        let handling: HistogramFamily<GrpcMethod> = Family::new_with_constructor(latency_histogram);
        let in_flight = Family::<GrpcMethod, Gauge>::default();
        let vendor_requests = Family::<VendorOutcome, Counter>::default();
        let vendor_seconds: HistogramFamily<VendorOperation> = Family::new_with_constructor(latency_histogram);
        let (tenants, reloads, reload_failures) = (Gauge::default(), Counter::default(), Counter::default());
        let db_connections = Family::<PoolState, Gauge>::default();
        let inbound_events = Family::<EventState, Counter>::default();
        let webhook_attempts = Family::<AttemptOutcome, Counter>::default();
        let webhook_seconds = latency_histogram();
        let tenant_vendor = Family::<TenantVendor, Counter>::default();
        registry.register(
            "patchbay_tenant_vendor_requests",
            "Vendor HTTP calls by served tenant, provider and outcome class (ok, client_error, server_error, timeout, error)",
            tenant_vendor.clone(),
        );
        registry.register(
            "patchbay_inbound_events",
            "Posts to inbound triggers by what became of them (accepted, duplicate, skipped, superseded, invalid, refused)",
            inbound_events.clone(),
        );
        registry.register(
            "patchbay_webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, retry, failed)",
            webhook_attempts.clone(),
        );
        registry.register(
            "patchbay_webhook_attempt_duration_seconds",
            "Webhook delivery attempt latency (until the receiver's answer)",
            webhook_seconds.clone(),
        );
        registry.register("grpc_server_started", "gRPC calls begun", started.clone());
        registry.register("grpc_server_handled", "gRPC calls ended, by status code", handled.clone());
        registry.register("grpc_server_handling_seconds", "gRPC call latency", handling.clone());
        registry.register("grpc_server_in_flight", "gRPC calls under way", in_flight.clone());
        registry.register(
            "patchbay_vendor_requests",
            "Vendor HTTP calls by provider, operation and outcome (HTTP status, timeout, error)",
            vendor_requests.clone(),
        );
        registry.register(
            "patchbay_vendor_request_duration_seconds",
            "Vendor HTTP call latency by provider and operation",
            vendor_seconds.clone(),
        );
        registry.register("patchbay_tenants", "Tenants served", tenants.clone());
        registry.register("patchbay_registry_reloads", "Tenant-file reloads since start", reloads.clone());
        registry.register(
            "patchbay_registry_reload_failures",
            "Reloads that found a problem in a tenant file, since start",
            reload_failures.clone(),
        );
        registry.register("patchbay_db_connections", "Database pool connections by state", db_connections.clone());
        registry.register(
            "patchbay_build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                started,
                handled,
                handling,
                in_flight,
                vendor_requests,
                vendor_seconds,
                tenants,
                reloads,
                reload_failures,
                db_connections,
                inbound_events,
                webhook_attempts,
                webhook_seconds,
                tenant_vendor,
                tenant_series: Default::default(),
            }),
        }
    }

    /// A post to an inbound trigger, by what became of it (a fixed set of states).
    pub fn inbound_event(&self, state: &'static str) {
        self.inner.inbound_events.get_or_create(&EventState { state }).inc();
    }

    /// A webhook delivery attempt: `delivered`, `retry` or `failed`.
    pub fn webhook_attempt(&self, outcome: &'static str, elapsed: Duration) {
        self.inner.webhook_attempts.get_or_create(&AttemptOutcome { outcome }).inc();
        self.inner.webhook_seconds.observe(elapsed.as_secs_f64());
    }

    /// A gRPC call begins; the returned guard records how it ends ([`CallTimer::finish`]), or, if
    /// it is dropped first (the client went away, its deadline passed), as `CANCELLED`.
    pub fn grpc_started(&self, method: GrpcMethod) -> CallTimer {
        self.inner.started.get_or_create(&method).inc();
        self.inner.in_flight.get_or_create(&method).inc();
        CallTimer { metrics: self.clone(), method, started: Instant::now(), done: false }
    }

    fn grpc_ended(&self, method: GrpcMethod, code: &'static str, elapsed: Duration) {
        let GrpcMethod { grpc_service, grpc_method, grpc_type } = method;
        self.inner.handled.get_or_create(&Handled { grpc_service, grpc_method, grpc_type, grpc_code: code }).inc();
        self.inner.handling.get_or_create(&method).observe(elapsed.as_secs_f64());
        self.inner.in_flight.get_or_create(&method).dec();
    }

    /// One vendor HTTP call (see `ops::vendor`); `outcome` is the HTTP status or `timeout` / `error`.
    pub fn vendor_call(
        &self,
        tenant: &str,
        provider: &'static str,
        operation: &'static str,
        outcome: &str,
        elapsed: Duration,
    ) {
        let labels = TenantVendor { tenant: tenant.to_owned(), provider, outcome: outcome_class(outcome) };
        self.inner.tenant_vendor.get_or_create(&labels).inc();
        {
            // Looked up before anything is copied: a known series (every call but its first)
            // costs one lookup, no allocation.
            let mut series = self.inner.tenant_series.lock().unwrap_or_else(|e| e.into_inner());
            if !series.get(tenant).is_some_and(|known| known.contains(&labels)) {
                series.entry(labels.tenant.clone()).or_default().insert(labels);
            }
        }
        let outcome = static_outcome(outcome);
        self.inner.vendor_requests.get_or_create(&VendorOutcome { provider, operation, outcome }).inc();
        self.inner
            .vendor_seconds
            .get_or_create(&VendorOperation { provider, operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Removes the per-tenant series of every tenant not in `served` (its file was removed).
    pub fn forget_tenants_except(&self, served: &HashSet<String>) {
        let mut series = self.inner.tenant_series.lock().unwrap_or_else(|e| e.into_inner());
        series.retain(|tenant, labels| {
            let keep = served.contains(tenant);
            if !keep {
                for l in labels.iter() {
                    self.inner.tenant_vendor.remove(l);
                }
            }
            keep
        });
    }

    /// The text exposition, with `now`'s registry and pool figures.
    pub fn render(&self, now: Snapshot) -> String {
        let i = &self.inner;
        i.tenants.set(i64::try_from(now.tenants).unwrap_or(i64::MAX));
        // The registry counts; these counters follow its totals (never backwards).
        i.reloads.inc_by(now.reloads.saturating_sub(i.reloads.get()));
        i.reload_failures.inc_by(now.reload_failures.saturating_sub(i.reload_failures.get()));
        i.db_connections.get_or_create(&PoolState { state: "in_use" }).set(now.db_in_use as i64);
        i.db_connections.get_or_create(&PoolState { state: "idle" }).set(now.db_idle as i64);
        let mut out = String::new();
        encode(&mut out, &i.registry).expect("writing to a String cannot fail");
        out
    }
}

/// A gRPC call under way (see [`Metrics::grpc_started`]).
pub struct CallTimer {
    metrics: Metrics,
    method: GrpcMethod,
    started: Instant,
    done: bool,
}

impl CallTimer {
    /// The call ended with `code` (`OK`, `NOT_FOUND`, ...).
    pub fn finish(mut self, code: &'static str) -> Duration {
        self.done = true;
        let elapsed = self.started.elapsed();
        self.metrics.grpc_ended(self.method, code, elapsed);
        elapsed
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.grpc_ended(self.method, "CANCELLED", self.started.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: GrpcMethod =
        GrpcMethod { grpc_service: "patchbay.v1.RegistryService", grpc_method: "ListTenants", grpc_type: "unary" };

    #[test]
    fn calls_are_counted_when_begun_and_when_ended_with_their_code_and_latency() {
        let m = Metrics::new();
        m.grpc_started(LIST).finish("OK");
        m.grpc_started(LIST).finish("OK");
        let in_flight = m.grpc_started(LIST);
        m.vendor_call("acme", "alianza", "GET account", "200", Duration::from_millis(3));
        m.inbound_event("accepted");
        m.webhook_attempt("delivered", Duration::from_millis(2));
        let text = m.render(Snapshot { tenants: 3, reloads: 2, reload_failures: 1, db_in_use: 1, db_idle: 4 });
        let labels = r#"grpc_service="patchbay.v1.RegistryService",grpc_method="ListTenants",grpc_type="unary""#;
        for line in [
            format!("grpc_server_started_total{{{labels}}} 3"),
            format!("grpc_server_handled_total{{{labels},grpc_code=\"OK\"}} 2"),
            format!("grpc_server_handling_seconds_count{{{labels}}} 2"),
            format!("grpc_server_in_flight{{{labels}}} 1"),
            r#"patchbay_vendor_requests_total{provider="alianza",operation="GET account",outcome="200"} 1"#.into(),
            r#"patchbay_vendor_request_duration_seconds_count{provider="alianza",operation="GET account"} 1"#.into(),
            "patchbay_tenants 3".into(),
            r#"patchbay_tenant_vendor_requests_total{tenant="acme",provider="alianza",outcome="ok"} 1"#.into(),
            r#"patchbay_inbound_events_total{state="accepted"} 1"#.into(),
            r#"patchbay_webhook_attempts_total{outcome="delivered"} 1"#.into(),
            "patchbay_webhook_attempt_duration_seconds_count 1".into(),
            "patchbay_registry_reloads_total 2".into(),
            "patchbay_registry_reload_failures_total 1".into(),
            r#"patchbay_db_connections{state="idle"} 4"#.into(),
            format!("patchbay_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        drop(in_flight);
        let text = m.render(Snapshot::default());
        assert!(text.contains(&format!("grpc_server_handled_total{{{labels},grpc_code=\"CANCELLED\"}} 1")), "{text}");
        assert!(text.contains(&format!("grpc_server_in_flight{{{labels}}} 0")), "{text}");
    }

    #[test]
    fn a_tenant_s_series_go_when_it_is_no_longer_served() {
        let m = Metrics::new();
        m.vendor_call("acme", "alianza", "GET account", "503", Duration::from_millis(3));
        m.vendor_call("globex", "delacon", "POST order", "timeout", Duration::from_millis(3));
        let text = m.render(Snapshot::default());
        assert!(text.contains(r#"tenant="acme",provider="alianza",outcome="server_error"} 1"#), "{text}");
        m.forget_tenants_except(&HashSet::from(["globex".to_owned()]));
        let text = m.render(Snapshot::default());
        assert!(!text.contains(r#"tenant="acme""#), "{text}");
        assert!(text.contains(r#"tenant="globex",provider="delacon",outcome="timeout"} 1"#), "{text}");
    }

    #[test]
    fn reload_counters_follow_the_registrys_totals_and_never_go_back() {
        let m = Metrics::new();
        m.render(Snapshot { reloads: 5, ..Snapshot::default() });
        let text = m.render(Snapshot { reloads: 3, ..Snapshot::default() });
        assert!(text.lines().any(|l| l == "patchbay_registry_reloads_total 5"), "{text}");
    }
}
