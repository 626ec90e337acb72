//! The one way a vendor client sends an HTTP request. Every provider's calls go through
//! [`VendorHttp::exchange`], which
//! - opens a `vendor` span with the tenant, the provider and the operation (never a URL, a header
//!   or a body: those may hold credentials), inside the span of the gRPC call that caused it (its
//!   method), so that a log line of a retry or a refusal names all four; at debug level it logs
//!   each call's outcome and time;
//! - counts the call by provider, operation and outcome (the HTTP status, `timeout` or `error`)
//!   with the time it took, in `/metrics`;
//! - reads the answer's body up to a cap, never buffering more.
//!
//! What the answer means stays with the vendor's client: this layer knows no vendor.
//!
//! A client that is let go (its tenant's file changed or went, the server stops) may say goodbye
//! to its vendor, e.g. log out of a session: [`VendorHttp::farewell`] runs that in the background,
//! tracked, so that a stopping server waits for it a little (see `App::run_until`).

use std::{future::Future, sync::Arc, time::Instant};

use prost::bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::metrics::Metrics;

/// Where vendor clients report that a vendor refused a tenant's credentials, until the events
/// area takes the reports (`tenant.credentials_refused`). Keeps the latest refusal per tenant and
/// provider only, so it is bounded by the served tenants and their providers.
#[derive(Clone, Default)]
pub struct CredentialRefusals(Arc<std::sync::Mutex<std::collections::HashMap<(String, &'static str), String>>>);

impl CredentialRefusals {
    /// `message` is the vendor's words, already scrubbed of secrets by the client.
    pub fn note(&self, tenant: &str, provider: &'static str, message: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert((tenant.to_owned(), provider), super::text::one_line(message).chars().take(300).collect());
    }

    /// The refusals noted since the last call: (tenant, provider, message).
    pub fn take(&self) -> Vec<(String, &'static str, String)> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.drain().map(|((tenant, provider), message)| (tenant, provider, message)).collect()
    }
}

/// A vendor client's handle on the shared HTTP client, the metrics and its tenant.
#[derive(Clone)]
pub struct VendorHttp {
    http: reqwest::Client,
    metrics: Metrics,
    provider: &'static str,
    tenant: String,
    farewells: TaskTracker,
    refusals: CredentialRefusals,
    /// The tenant's vendor calls in flight at once, at most (shared by its providers).
    slots: Option<Arc<Semaphore>>,
    /// Whether calls are counted and traced (off only to measure what that costs).
    instrumented: bool,
}

impl std::fmt::Debug for VendorHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorHttp").field("provider", &self.provider).field("tenant", &self.tenant).finish()
    }
}

/// An answer: its status, and its body unless it was longer than the cap (`None`).
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: Option<Bytes>,
}

impl VendorHttp {
    pub fn new(http: reqwest::Client, metrics: Metrics, provider: &'static str, tenant: impl Into<String>) -> Self {
        Self {
            http,
            metrics,
            provider,
            tenant: tenant.into(),
            farewells: TaskTracker::new(),
            slots: None,
            refusals: Default::default(),
            instrumented: true,
        }
    }

    /// Neither counts nor traces its calls: only for measuring what those layers cost
    /// (`Limits::bare`, benches/account.rs).
    pub fn uninstrumented(mut self) -> Self {
        self.instrumented = false;
        self
    }

    /// Reports refused credentials to `refusals` (the server's).
    pub fn with_refusals(mut self, refusals: CredentialRefusals) -> Self {
        self.refusals = refusals;
        self
    }

    /// The vendor refused this tenant's credentials: the client calls this where it reads such an
    /// answer, with the vendor's words (no secret).
    pub fn credentials_refused(&self, message: &str) {
        tracing::warn!(tenant = %self.tenant, provider = self.provider, "the vendor refused the tenant's credentials");
        self.refusals.note(&self.tenant, self.provider, message);
    }

    /// Bounds this client's calls in flight by `slots` (the tenant's, see `registry`): a burst of
    /// one tenant waits for its own slots and cannot take every connection to a vendor.
    pub fn with_slots(mut self, slots: Arc<Semaphore>) -> Self {
        self.slots = Some(slots);
        self
    }

    /// Tracks this client's farewells in `farewells` (the server's, which it waits for on stop).
    pub fn with_farewells(mut self, farewells: TaskTracker) -> Self {
        self.farewells = farewells;
        self
    }

    /// Runs `goodbye` (a client's last request, e.g. a logout) in the background, if there is a
    /// runtime to run it on; a dropped client calls it from `Drop`, which cannot wait.
    pub fn farewell(&self, goodbye: impl Future<Output = ()> + Send + 'static) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.farewells.spawn_on(goodbye, &runtime);
        }
    }

    /// The shared client, to build requests with (sent through [`VendorHttp::exchange`]).
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Sends `request` as `operation` (a fixed name: `add_lead`, `GET account`), reads at most
    /// `max_body` bytes of its answer, and records the call.
    pub async fn exchange(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
        max_body: usize,
    ) -> Result<Answer, reqwest::Error> {
        if !self.instrumented {
            let _slot = match &self.slots {
                Some(slots) => Some(slots.acquire().await.expect("the slots are never closed")),
                None => None,
            };
            return send_capped(request, max_body).await;
        }
        // The span carries who and what; how it ended is an event inside it (recording fields
        // on a span makes the formatter copy them on every call, logged or not).
        let span = tracing::info_span!(
            "vendor",
            tenant = %self.tenant,
            provider = self.provider,
            operation,
            otel.name = operation,
            otel.kind = "client"
        );
        // Waiting for a slot is not the vendor's time: the clock starts once it is taken.
        let _slot = match &self.slots {
            Some(slots) => Some(slots.acquire().instrument(span.clone()).await.expect("the slots are never closed")),
            None => None,
        };
        let started = Instant::now();
        let result = send_capped(request, max_body).instrument(span.clone()).await;
        let elapsed = started.elapsed();
        let outcome: &str = match &result {
            Ok(answer) => answer.status.as_str(),
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "error",
        };
        span.in_scope(|| tracing::debug!(outcome, elapsed_ms = elapsed.as_millis() as u64, "vendor call"));
        self.metrics.vendor_call(&self.tenant, self.provider, operation, outcome, elapsed);
        result
    }
}

/// Sends `req` and reads its answer, never buffering more than `max` bytes.
async fn send_capped(req: reqwest::RequestBuilder, max: usize) -> Result<Answer, reqwest::Error> {
    let mut resp = req.send().await?;
    let status = resp.status();
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Ok(Answer { status, body: None });
    }
    // Most answers arrive in one chunk: keep it as it is, without copying.
    let Some(first) = resp.chunk().await? else { return Ok(Answer { status, body: Some(Bytes::new()) }) };
    let Some(second) = resp.chunk().await? else {
        let body = (first.len() <= max).then_some(first);
        return Ok(Answer { status, body });
    };
    let mut buf = Vec::with_capacity(first.len() + second.len());
    for chunk in [first, second] {
        buf.extend_from_slice(&chunk);
    }
    while buf.len() <= max {
        match resp.chunk().await? {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None => break,
        }
    }
    let body = (buf.len() <= max).then(|| Bytes::from(buf));
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::*;

    /// A server answering every connection with `answer`.
    async fn server(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let _ = socket.write_all(answer).await;
            }
        });
        format!("http://{addr}/api?password=hunter2")
    }

    #[tokio::test]
    async fn every_call_is_counted_by_provider_operation_and_outcome_with_its_time() {
        let url = server(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        let metrics = Metrics::new();
        let vendor = VendorHttp::new(reqwest::Client::new(), metrics.clone(), "acmevoice", "tenant-a");
        let answer = vendor.exchange("GET account", vendor.client().get(&url), 1024).await.unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(answer.body.as_deref(), Some(&b"ok"[..]));
        let text = metrics.render(Default::default());
        assert!(
            text.contains(
                "patchbay_vendor_requests_total{provider=\"acmevoice\",operation=\"GET account\",outcome=\"201\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "patchbay_vendor_request_duration_seconds_count{provider=\"acmevoice\",operation=\"GET account\"} 1"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_cap_is_not_buffered_and_a_refused_connection_counts_as_error() {
        let url = server(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n0123456789").await;
        let metrics = Metrics::new();
        let vendor = VendorHttp::new(reqwest::Client::new(), metrics.clone(), "acmevoice", "t");
        let answer = vendor.exchange("op", vendor.client().get(&url), 4).await.unwrap();
        assert_eq!((answer.status.as_u16(), answer.body), (200, None));

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let err = vendor.exchange("op", vendor.client().get(format!("http://{closed}/")), 4).await.unwrap_err();
        assert!(err.is_connect(), "{err}");
        let text = metrics.render(Default::default());
        assert!(text.contains("operation=\"op\",outcome=\"error\"} 1"), "{text}");
        assert!(text.contains("operation=\"op\",outcome=\"200\"} 1"), "{text}");
    }
}
