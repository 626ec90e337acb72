//! The receiver of Delacon's order callbacks: `POST /callbacks/delacon/{tenant}/{callback_secret}`
//! on the HTTP listener, with form fields `OrderID`, `Result` (`OK` or `FAIL`) and `Message`.
//!
//! - An unknown tenant, a tenant without a Delacon trigger, or a wrong secret: 404 with an empty
//!   body, whichever it is (the secret is compared in constant time).
//! - The order's change is committed before `{"RESULT":"ACCEPTED"}` is sent, so an ACCEPTED
//!   callback is never lost; a database failure is a 500 with `RESULT: FAIL`, and Delacon tries again.
//! - A duplicate delivery changes nothing and is ACCEPTED.
//! - A callback for an order whose WAIT answer is not stored yet is held and ACCEPTED.
//! - An unknown order: `{"RESULT":"FAIL","MESSAGE":...}`.
//!
//! The URL holds the secret, so it is never logged; logs name the tenant and the order. A refused
//! callback's tenant segment is whatever the sender wrote: it is logged escaped and clipped, each
//! refusal at debug, and at most one warning per minute says how many were refused.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State, rejection::FormRejection, rejection::PathRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    client::PROVIDER,
    wire::{self, Answer, Callback},
};
use crate::{
    platform::AppState,
    provisioning::{
        ProvisioningArea,
        provider::{OrderOutcome, OrderState},
        store::{self, CallbackEffect},
        watch::Announcer,
    },
    store::audit,
};

/// Where Delacon's callbacks arrive; the full path is `{prefix}/{tenant}/{callback_secret}`.
pub const CALLBACK_PREFIX: &str = "/callbacks/delacon";

/// The audit rows' method for callbacks.
const AUDIT_METHOD: &str = "POST /callbacks/delacon";

/// The longest part of a refused callback's tenant segment that is logged.
const LOGGED_TENANT_CHARS: usize = 64;
/// The longest callback message kept.
const MAX_MESSAGE_CHARS: usize = 1000;
/// At most one warning about refused callbacks per this period.
const REFUSAL_WARN_PERIOD: Duration = Duration::from_secs(60);

/// The receiver's state: the application's, the announcer of order changes, and the rate limit
/// of its warnings.
#[derive(Clone)]
struct Receiver {
    app: AppState,
    announcer: Announcer,
    refusals: Arc<RefusalLog>,
}

/// The callback route, for the HTTP listener.
pub fn routes(state: AppState) -> Router {
    let receiver = Receiver {
        announcer: Announcer::start(state.db.clone()),
        app: state,
        refusals: Arc::new(RefusalLog::new(REFUSAL_WARN_PERIOD)),
    };
    Router::new().route(&format!("{CALLBACK_PREFIX}/{{tenant}}/{{secret}}"), post(receive)).with_state(receiver)
}

/// Logs refused callbacks without letting their senders write or flood the log.
struct RefusalLog {
    period: Duration,
    last_warning: Mutex<Option<Instant>>,
    /// Refusals since the last warning.
    unreported: AtomicU64,
}

impl RefusalLog {
    fn new(period: Duration) -> Self {
        Self { period, last_warning: Mutex::new(None), unreported: AtomicU64::new(0) }
    }

    fn refused(&self, tenant: &str) {
        let tenant = clip(tenant, LOGGED_TENANT_CHARS);
        // `?`: escaped (quotes, `\n`), so a crafted segment cannot forge log lines.
        tracing::debug!(tenant = ?tenant, "Delacon callback refused: unknown tenant or wrong callback secret");
        self.unreported.fetch_add(1, Ordering::Relaxed);
        let due = {
            let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= self.period);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            let refused = self.unreported.swap(0, Ordering::Relaxed).max(1);
            tracing::warn!(
                refused,
                latest_tenant = ?tenant,
                "Delacon callbacks refused (unknown tenant or wrong callback secret); a wrong callback URL in the \
                 Delacon portal, or someone probing. At most one such warning a minute; each refusal is logged at debug"
            );
        }
    }
}

/// At most `max` characters of `text`, marked when cut.
fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn answer(status: StatusCode, answer: Answer) -> Response {
    (status, Json(answer)).into_response()
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, Answer::result(wire::FAIL, message))
}

/// Whether `secret` is the Delacon callback secret of `tenant`. Every path compares digests in
/// constant time, so neither the answer's timing nor its content tells the cases apart.
fn authorized(state: &AppState, tenant: &str, secret: &str) -> bool {
    let presented = Sha256::digest(secret.as_bytes());
    let expected = state.registry.get(tenant).and_then(|t| {
        let trigger = t.trigger::<ProvisioningArea>()?;
        // Callbacks for orders placed while the trigger was on still count when it is off.
        (trigger.provider == PROVIDER).then(|| Sha256::digest(trigger.callback_secret().expose_secret().as_bytes()))
    });
    match expected {
        Some(expected) => bool::from(presented.ct_eq(&expected)),
        None => {
            // Same work as a real comparison.
            let _ = presented.ct_eq(&Sha256::digest(b"no tenant"));
            false
        }
    }
}

async fn receive(
    State(Receiver { app: state, announcer, refusals }): State<Receiver>,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<Callback>, FormRejection>,
) -> Response {
    let started = Instant::now();
    let Ok(Path((tenant, secret))) = path else { return not_found() };
    if !authorized(&state, &tenant, &secret) {
        refusals.refused(&tenant);
        return not_found();
    }
    // From here the tenant is a served tenant's id (lowercase letters, digits, `-`).
    let Ok(Form(callback)) = form else {
        return fail(StatusCode::BAD_REQUEST, "expected a form with OrderID, Result (OK or FAIL) and Message");
    };
    let order_id = callback.order_id.trim();
    if order_id.is_empty() || order_id.len() > 64 || order_id.chars().any(char::is_control) {
        return fail(StatusCode::BAD_REQUEST, "OrderID is required (at most 64 printable characters)");
    }
    let order_state = match callback.result.trim() {
        wire::OK => OrderState::Completed,
        wire::FAIL => OrderState::Failed,
        _ => return fail(StatusCode::BAD_REQUEST, "Result must be OK or FAIL"),
    };
    // Delacon's messages are a sentence; a longer one is kept clipped, as the client does.
    let message = clip(callback.message.trim(), MAX_MESSAGE_CHARS);
    let outcome = OrderOutcome { order_id: order_id.to_owned(), state: order_state, message };
    let effect = match store::apply_callback(&state.db, &tenant, &outcome).await {
        Ok((effect, announcement)) => {
            if let Some(announcement) = announcement {
                announcer.announce(announcement);
            }
            effect
        }
        Err(e) => {
            tracing::error!(%tenant, ?order_id, error = %e, "storing a Delacon callback failed");
            // Not ACCEPTED: Delacon tries again.
            return fail(StatusCode::INTERNAL_SERVER_ERROR, "temporary failure; please try again");
        }
    };
    let (outcome_code, reason, response) = match effect {
        CallbackEffect::Applied => {
            tracing::info!(%tenant, ?order_id, state = order_state.as_str(), "order callback applied");
            ("OK", "", accepted())
        }
        CallbackEffect::Duplicate { conflicting } => {
            if conflicting {
                tracing::warn!(%tenant, ?order_id, "a callback contradicts the order's final state; the first outcome stands");
            }
            ("OK", "DUPLICATE_CALLBACK", accepted())
        }
        CallbackEffect::Held => {
            tracing::info!(%tenant, ?order_id, "order callback held until the order's answer is stored");
            ("OK", "CALLBACK_BEFORE_ORDER", accepted())
        }
        CallbackEffect::HoldFull => {
            tracing::warn!(%tenant, ?order_id, "a callback for an order not stored yet was not held: too many are held");
            let message = "too many callbacks for orders not yet stored; please try again later";
            ("UNAVAILABLE", "CALLBACK_HOLD_FULL", fail(StatusCode::SERVICE_UNAVAILABLE, message))
        }
        CallbackEffect::UnknownOrder => {
            tracing::warn!(%tenant, ?order_id, "a callback names an unknown order");
            ("NOT_FOUND", "ORDER_NOT_FOUND", fail(StatusCode::OK, format!("unknown OrderID {order_id}")))
        }
    };
    // The audit row is written after the answer: the order's change is already committed, and
    // the vendor need not wait for the trail.
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let order_id = order_id.to_owned();
    tokio::spawn(async move {
        let event = audit::NewEvent {
            tenant: &tenant,
            caller: "vendor:delacon",
            method: AUDIT_METHOD,
            provider: PROVIDER,
            outcome: outcome_code,
            reason,
            latency_ms,
            request_id: &order_id,
        };
        if let Err(e) = audit::record(&state.db, &event).await {
            tracing::error!(error = %e, %tenant, "writing a callback's audit row failed");
        }
    });
    response
}

fn accepted() -> Response {
    answer(StatusCode::OK, Answer { result: Some(wire::ACCEPTED.into()), ..Answer::default() })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Everything logged through `f`, at `level` and above, as the server's formatter writes it.
    fn logged(level: tracing::Level, f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_refused_callback_s_tenant_segment_is_logged_escaped_and_clipped() {
        let log = RefusalLog::new(Duration::from_secs(60));
        let crafted = format!("acme\n2026-01-01T00:00:00Z ERROR forged: database wiped{}", "x".repeat(10_000));
        let out = logged(tracing::Level::DEBUG, || log.refused(&crafted));
        assert_eq!(out.lines().count(), 2, "one debug line and one warning: {out}");
        assert!(out.lines().all(|l| !l.starts_with("2026-01-01T00:00:00Z ERROR forged")), "{out}");
        assert!(out.contains(r"acme\n2026"), "the newline is escaped: {out}");
        assert!(!out.contains(&"x".repeat(LOGGED_TENANT_CHARS)), "clipped: {out}");
        assert!(out.len() < 1500, "{} bytes", out.len());
    }

    #[test]
    fn refused_callbacks_warn_at_most_once_a_period_with_their_count() {
        let log = RefusalLog::new(Duration::from_millis(300));
        let out = logged(tracing::Level::INFO, || {
            for i in 0..1000 {
                log.refused(&format!("probe-{i}"));
            }
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("WARN") && out.contains("refused=1"), "{out}");
        let out = logged(tracing::Level::INFO, || {
            for i in 0..9 {
                log.refused(&format!("probe-{i}"));
            }
            std::thread::sleep(Duration::from_millis(350));
            log.refused("probe-last");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains("refused=1008") || out.contains("refused=1009"),
            "the count since the last warning: {out}"
        );
    }
}
