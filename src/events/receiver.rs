//! `patchbay sim webhook-receiver`: a tiny receiver of patchbay's webhooks, as a CRM would run
//! one. It checks each webhook's Standard Webhooks signature (the demo secret, or
//! `PATCHBAY_WEBHOOK_SECRET`), dedupes by `webhook-id`, and prints each one as a JSON line. Tests
//! run it in-process, read what it received and switch it down (503) and up.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};

use crate::{
    ops::webhooks::SigningKey,
    registry::provider::{DemoSim, RunningSim},
    sim::SimServer,
};

/// The secret of the demo tenant's endpoint (`providers.d/demo.yaml`).
pub const DEMO_SECRET: &str = "whsec_cGF0Y2hiYXktZGVtby13ZWJob29rLXNlY3JldC0zMmI=";

/// `patchbay sim webhook-receiver`.
pub const DEMO: DemoSim = DemoSim {
    about: "a receiver of patchbay's webhooks: checks signatures (demo secret or PATCHBAY_WEBHOOK_SECRET), prints each",
    start: start_demo,
};

fn start_demo(addr: SocketAddr) -> io::Result<RunningSim> {
    let secret = std::env::var("PATCHBAY_WEBHOOK_SECRET").unwrap_or_else(|_| DEMO_SECRET.to_owned());
    let key = SigningKey::parse(&secret).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let receiver = WebhookReceiver::start(addr, key, true)?;
    Ok(RunningSim { url: format!("{}/webhooks", receiver.url()), guard: Box::new(receiver) })
}

/// One webhook received.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub event_type: String,
    pub body: serde_json::Value,
    pub signature_valid: bool,
    pub at: Instant,
    /// The receiver's clock (unix milliseconds), to compare with patchbay's commit times.
    pub at_unix_ms: i64,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    /// Every POST, repeats included.
    posts: std::sync::atomic::AtomicU64,
    down: AtomicBool,
}

/// A running receiver.
pub struct WebhookReceiver {
    server: SimServer,
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Inner>,
    key: Arc<SigningKey>,
    print: bool,
}

impl WebhookReceiver {
    /// Serves on `addr`; `print`: each webhook as a JSON line on standard output.
    pub fn start(addr: SocketAddr, key: SigningKey, print: bool) -> io::Result<Self> {
        let inner = Arc::new(Inner::default());
        let shared = Shared { inner: Arc::clone(&inner), key: Arc::new(key), print };
        let router = Router::new().route("/{*path}", post(receive)).with_state(shared);
        Ok(Self { server: SimServer::start(router, addr)?, inner })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Each distinct webhook once, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every POST it answered, repeats included.
    pub fn posts(&self) -> u64 {
        self.inner.posts.load(Ordering::Relaxed)
    }

    /// While down, every webhook is answered 503 and not kept.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::Relaxed);
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.inner.posts.fetch_add(1, Ordering::Relaxed);
    if shared.inner.down.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let id = header("webhook-id");
    let valid = shared
        .key
        .verify(&id, &header("webhook-timestamp"), &header("webhook-signature"), &body, now.as_secs() as i64, 300)
        .is_ok();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let event_type = json["type"].as_str().unwrap_or_default().to_owned();
    if shared.print {
        let line =
            serde_json::json!({"webhook_id": id, "signature_valid": valid, "type": event_type, "data": json["data"]});
        println!("{line}");
    }
    if !valid {
        return StatusCode::UNAUTHORIZED;
    }
    let mut received = shared.inner.received.lock().unwrap_or_else(|e| e.into_inner());
    if !received.iter().any(|r| r.webhook_id == id) {
        received.push(Received {
            webhook_id: id,
            event_type,
            body: json,
            signature_valid: valid,
            at: Instant::now(),
            at_unix_ms: now.as_millis() as i64,
        });
    }
    StatusCode::NO_CONTENT
}
