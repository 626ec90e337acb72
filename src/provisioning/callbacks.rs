//! The receiver of providers' order callbacks on the public HTTP listener. Each provider's
//! folder parses and authenticates what its vendor sends into an [`OrderOutcome`] and answers in
//! its vendor's format; this module applies the outcome to the order store, tells the watchers,
//! and writes the audit row.
//!
//! - An unknown tenant, a tenant without that provider, or a wrong secret: 404 with an empty
//!   body, whichever it is (the secret is compared in constant time).
//! - The order's change is committed before the provider's "accepted" answer is sent, so an
//!   accepted callback is never lost; a database failure is answered so that the vendor tries again.
//! - A duplicate delivery changes nothing and is accepted.
//! - A callback for an order whose answer is not stored yet is held and accepted.
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
    Form, Router,
    extract::{Path, State, rejection::FormRejection, rejection::PathRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    area::ProvisioningArea,
    delacon::{self, callback as delacon_callback},
    provider::{CallbackReply, OrderOutcome, clip},
    store::{self, CallbackEffect},
    watch::Announcer,
};
use crate::{
    platform::{
        AppState,
        events::{self, EventType},
    },
    store::audit,
};

/// The longest part of a refused callback's tenant segment that is logged.
const LOGGED_TENANT_CHARS: usize = 64;
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

/// The callback routes of the area's providers, for the HTTP listener.
pub fn routes(state: &AppState) -> Router {
    let receiver = Receiver {
        announcer: Announcer::start(state.db.clone()),
        app: state.clone(),
        refusals: Arc::new(RefusalLog::new(REFUSAL_WARN_PERIOD)),
    };
    Router::new().route(delacon_callback::ROUTE, post(receive_delacon)).with_state(receiver)
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

/// Whether `secret` is the callback secret of `tenant`, whose trigger is on `provider`. Every path compares digests in
/// constant time, so neither the answer's timing nor its content tells the cases apart.
fn authorized(state: &AppState, provider: &str, tenant: &str, secret: &str) -> bool {
    let presented = Sha256::digest(secret.as_bytes());
    let expected = state.registry.get(tenant).and_then(|t| {
        let trigger = t.trigger::<ProvisioningArea>()?;
        // Callbacks for orders placed while the trigger was on still count when it is off.
        (trigger.provider == provider).then(|| Sha256::digest(trigger.callback_secret().expose_secret().as_bytes()))
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

async fn receive_delacon(
    State(receiver): State<Receiver>,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<delacon::wire::Callback>, FormRejection>,
) -> Response {
    let started = Instant::now();
    let Ok(Path((tenant, secret))) = path else { return StatusCode::NOT_FOUND.into_response() };
    if !authorized(&receiver.app, delacon::PROVIDER, &tenant, &secret) {
        receiver.refusals.refused(&tenant);
        return StatusCode::NOT_FOUND.into_response();
    }
    // From here the tenant is a served tenant's id (lowercase letters, digits, `-`).
    let outcome = match delacon_callback::parse(form) {
        Ok(outcome) => outcome,
        Err(bad) => return delacon_callback::reply(bad),
    };
    let (reply, code, reason) = match apply(&receiver, &tenant, &outcome).await {
        Ok(applied) => applied,
        // Not stored, so not audited: the vendor tries again.
        Err(reply) => return delacon_callback::reply(reply),
    };
    // The audit row is written after the answer: the order's change is already committed, and
    // the vendor need not wait for the trail.
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let db = receiver.app.db.clone();
    let order_id = outcome.order_id;
    tokio::spawn(async move {
        let event = audit::NewEvent {
            tenant: &tenant,
            caller: delacon_callback::CALLER,
            method: delacon_callback::AUDIT_METHOD,
            provider: delacon::PROVIDER,
            outcome: code,
            reason,
            latency_ms,
            request_id: &order_id,
        };
        if let Err(e) = audit::record(&db, &event).await {
            tracing::error!(error = %e, %tenant, "writing a callback's audit row failed");
        }
    });
    delacon_callback::reply(reply)
}

/// Applies the outcome and, when it changed the order, stores its `order.state_changed` event for
/// the tenant's endpoints in the same transaction. `true`: an event was stored.
async fn apply_and_report(
    app: &AppState,
    tenant: &str,
    outcome: &OrderOutcome,
) -> Result<(CallbackEffect, Option<store::Announcement>, bool), sqlx::Error> {
    let served = app.registry.get(tenant);
    let wanted = served.as_deref().is_some_and(|t| events::wanted(t, EventType::OrderStateChanged));
    if !wanted {
        // One round trip, as before events existed.
        let (effect, announcement) = store::apply_callback(&mut *app.db.acquire().await?, tenant, outcome).await?;
        return Ok((effect, announcement, false));
    }
    let mut tx = app.db.begin().await?;
    let (effect, announcement) = store::apply_callback(&mut tx, tenant, outcome).await?;
    let mut reported = false;
    if effect == CallbackEffect::Applied
        && let Some(t) = served.as_deref()
    {
        let event =
            store::order_event(tenant, &outcome.order_id, outcome.state, &outcome.message, store::SOURCE_CALLBACK);
        reported = events::emit(&mut tx, t, &event).await?;
    }
    tx.commit().await?;
    Ok((effect, announcement, reported))
}

/// Applies a provider's order outcome, committed (or held) before the provider is answered: the
/// reply for the vendor, and the audit row's outcome and reason. `Err`: nothing was stored.
async fn apply(
    receiver: &Receiver,
    tenant: &str,
    outcome: &OrderOutcome,
) -> Result<(CallbackReply, &'static str, &'static str), CallbackReply> {
    let order_id = outcome.order_id.as_str();
    let effect = match apply_and_report(&receiver.app, tenant, outcome).await {
        Ok((effect, announcement, reported)) => {
            if let Some(announcement) = announcement {
                receiver.announcer.announce(announcement);
            }
            if reported {
                receiver.app.outbox.wake();
            }
            effect
        }
        Err(e) => {
            tracing::error!(%tenant, ?order_id, error = %e, "storing an order callback failed");
            // Not accepted: the vendor tries again.
            return Err(CallbackReply::Failed("temporary failure; please try again".into()));
        }
    };
    match effect {
        CallbackEffect::Applied => {
            tracing::info!(%tenant, ?order_id, state = outcome.state.as_str(), "order callback applied");
            Ok((CallbackReply::Accepted, "OK", ""))
        }
        CallbackEffect::Duplicate { conflicting } => {
            if conflicting {
                tracing::warn!(%tenant, ?order_id, "a callback contradicts the order's final state; the first outcome stands");
            }
            Ok((CallbackReply::Accepted, "OK", "DUPLICATE_CALLBACK"))
        }
        CallbackEffect::Held => {
            tracing::info!(%tenant, ?order_id, "order callback held until the order's answer is stored");
            Ok((CallbackReply::Accepted, "OK", "CALLBACK_BEFORE_ORDER"))
        }
        CallbackEffect::HoldFull => {
            tracing::warn!(%tenant, ?order_id, "a callback for an order not stored yet was not held: too many are held");
            let message = "too many callbacks for orders not yet stored; please try again later";
            Ok((CallbackReply::TryLater(message.into()), "UNAVAILABLE", "CALLBACK_HOLD_FULL"))
        }
        CallbackEffect::UnknownOrder => {
            tracing::warn!(%tenant, ?order_id, "a callback names an unknown order");
            Ok((CallbackReply::UnknownOrder(format!("unknown OrderID {order_id}")), "NOT_FOUND", "ORDER_NOT_FOUND"))
        }
    }
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
