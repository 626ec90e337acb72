//! What every vendor simulator shares: hosting as a real HTTP server, call counters, and fault
//! injection. The simulators themselves (routes, state, validation) live in their vendor's folder.
//!
//! Faults are planned by tests and benches (`faults.plan(FaultRule::new(Fault::Status(500)).times(2))`)
//! and consumed in order by the requests they match. A rule matches an endpoint key: the request's
//! `METHOD /path` for the middleware, or whatever key a simulator passes to [`Faults::take`]
//! (the Elision simulator uses its `function` parameter, since all its calls share one URL).

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::{sync::oneshot, task::JoinHandle};

/// A simulator serving on a loopback port until dropped.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SimServer {
    /// Binds `addr` (port 0 picks a free port) and serves `router` on the current Tokio runtime.
    pub fn start(router: Router, addr: SocketAddr) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(err) = serve.await {
                tracing::warn!(%err, "simulator stopped with an error");
            }
        });
        Ok(Self { addr, shutdown: Some(tx), task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// What an injected fault does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a short plain-text body.
    Status(u16),
    /// Never answer in time: the client's timeout must fire.
    Hang,
    /// Answer 200 with a body no parser accepts.
    Garbage,
    /// Answer with this HTTP status and this JSON body (a vendor's own error shape).
    Json(u16, &'static str),
}

/// One planned fault: which endpoints it hits and how many times.
#[derive(Debug, Clone)]
pub struct FaultRule {
    fault: Fault,
    matches: Option<String>,
    /// `None`: every matching request until the rule is cleared.
    remaining: Option<u32>,
    /// Strike only every `n`th matching request (1: each one).
    every: u32,
    /// Matching requests seen, for `every`.
    seen: u32,
}

impl FaultRule {
    pub fn new(fault: Fault) -> Self {
        Self { fault, matches: None, remaining: None, every: 1, seen: 0 }
    }

    /// Only requests whose endpoint key contains `needle` (e.g. `"/deviceline"`, `"add_multi_lead"`).
    pub fn matching(mut self, needle: impl Into<String>) -> Self {
        self.matches = Some(needle.into());
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// About one matching request in `n` (`every(20)` is 5%), picked by a fixed pseudo-random
    /// sequence: the same rate on every run, but never in step with a client's retries (a
    /// strict every-`n`th could strike the same request's every retry). The others pass to the
    /// rules planned after it.
    pub fn every(mut self, n: u32) -> Self {
        self.every = n.max(1);
        self
    }
}

/// A well-mixed hash of `x` (SplitMix64's finaliser): consecutive inputs give unrelated outputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<FaultRule>,
    latency: Duration,
}

/// Faults planned for a simulator. Cheap to clone; all clones share one plan.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
    hang_for: Arc<Mutex<Option<Duration>>>,
}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule; rules are tried in the order they were planned.
    pub fn plan(&self, rule: FaultRule) {
        self.state().rules.push(rule);
    }

    /// Delay added before every answer (the vendor's own processing time).
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    pub fn latency(&self) -> Duration {
        self.state().latency
    }

    /// How long a [`Fault::Hang`] holds a request (default 120 s: longer than any client timeout).
    pub fn set_hang_for(&self, d: Duration) {
        *self.hang_for.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
    }

    /// Removes every rule and the latency.
    pub fn clear(&self) {
        *self.state() = FaultState::default();
    }

    /// The fault for a request with this endpoint key, if a rule matches; consumes one use of it.
    pub fn take(&self, key: &str) -> Option<Fault> {
        let mut state = self.state();
        let idx = state.rules.iter_mut().position(|r| {
            if !r.matches.as_deref().is_none_or(|m| key.contains(m)) {
                return false;
            }
            r.seen = r.seen.wrapping_add(1);
            r.every == 1 || splitmix64(u64::from(r.seen)).is_multiple_of(u64::from(r.every))
        })?;
        let rule = &mut state.rules[idx];
        let fault = rule.fault.clone();
        match &mut rule.remaining {
            Some(1) => {
                state.rules.remove(idx);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(fault)
    }

    /// Applies the latency, then the planned fault for `key` if any: `Some(response)` means the
    /// simulator must answer with it instead of handling the request.
    pub async fn intercept(&self, key: &str) -> Option<Response> {
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let fault = self.take(key)?;
        Some(self.respond(fault).await)
    }

    async fn respond(&self, fault: Fault) -> Response {
        match fault {
            Fault::Status(code) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, format!("simulated fault: HTTP {code}")).into_response()
            }
            Fault::Hang => {
                let hang = self.hang_for.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(Duration::from_secs(120));
                tokio::time::sleep(hang).await;
                (StatusCode::GATEWAY_TIMEOUT, "simulated hang").into_response()
            }
            Fault::Json(code, body) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
            }
            Fault::Garbage => {
                let mut resp = Response::new(Body::from("\u{1}<<garbage>>{\"unterminated"));
                resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panic while holding this lock cannot leave the plan inconsistent; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Axum middleware applying the plan to every request, keyed `METHOD /path`.
    pub fn layer(&self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.clone(), fault_middleware))
    }
}

async fn fault_middleware(State(faults): State<Faults>, req: Request, next: Next) -> Response {
    let key = format!("{} {}", req.method(), req.uri().path());
    if let Some(resp) = faults.intercept(&key).await {
        return resp;
    }
    next.run(req).await
}

/// Calls per endpoint, so tests and benches can assert how a client used the vendor
/// (one login for 10,000 reads, batches of the right size, ...).
#[derive(Debug, Clone, Default)]
pub struct Calls {
    inner: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Calls {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, endpoint: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(endpoint.to_owned()).or_default() += 1;
    }

    pub fn get(&self, endpoint: &str) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).get(endpoint).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn reset(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order_and_expire_after_their_count() {
        let faults = Faults::new();
        faults.plan(FaultRule::new(Fault::Status(500)).matching("/deviceline").times(2));
        faults.plan(FaultRule::new(Fault::Garbage).times(1));
        assert_eq!(faults.take("GET /v2/account/1/deviceline"), Some(Fault::Status(500)));
        assert_eq!(faults.take("GET /v2/account/1"), Some(Fault::Garbage));
        assert_eq!(faults.take("GET /v2/account/1"), None);
        assert_eq!(faults.take("GET /v2/account/1/deviceline"), Some(Fault::Status(500)));
        assert_eq!(faults.take("GET /v2/account/1/deviceline"), None);
    }

    #[test]
    fn a_rule_without_count_lasts_until_cleared() {
        let faults = Faults::new();
        faults.plan(FaultRule::new(Fault::Status(503)));
        for _ in 0..5 {
            assert_eq!(faults.take("x"), Some(Fault::Status(503)));
        }
        faults.clear();
        assert_eq!(faults.take("x"), None);
    }

    #[tokio::test]
    async fn server_answers_faults_over_real_http() {
        let faults = Faults::new();
        let router = faults.layer(Router::new().route("/ping", axum::routing::get(|| async { "pong" })));
        let server = SimServer::start(router, "127.0.0.1:0".parse().unwrap()).unwrap();
        let http = reqwest::Client::new();
        let url = format!("{}/ping", server.url());
        assert_eq!(http.get(&url).send().await.unwrap().text().await.unwrap(), "pong");
        faults.plan(FaultRule::new(Fault::Status(502)).times(1));
        assert_eq!(http.get(&url).send().await.unwrap().status(), 502);
        faults.plan(FaultRule::new(Fault::Hang).times(1));
        faults.set_hang_for(Duration::from_secs(5));
        let err = http.get(&url).timeout(Duration::from_millis(100)).send().await.unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(http.get(&url).send().await.unwrap().text().await.unwrap(), "pong");
        server.stop().await;
    }
}
