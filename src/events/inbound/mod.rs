//! Inbound triggers: `POST /triggers/{tenant}/{name}` (and `/{secret}` for a path secret) on
//! the public HTTP listener, as a tenant's `events.inbound` declares them.
//!
//! An unknown tenant or trigger, or a wrong path secret, is 404 whichever it is; wrong basic
//! credentials or a bad signature 401; nothing of an unauthenticated post is stored. An
//! authenticated post is stored before it is answered 2xx (202 decided, 200 a duplicate); one
//! that cannot be read or applied is answered 4xx naming the field, and kept (`invalid`) for the
//! operator. A database failure is 503 with Retry-After: nothing stored, the sender tries again.

mod read;
pub mod store;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    account,
    ops::ApiError,
    platform::AppState,
    registry::{
        Tenant,
        events::{InboundAuth, InboundTrigger},
    },
};
use read::Unreadable;

/// The largest body an inbound trigger takes (a customer change is a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a 503 asks the sender to wait.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The inbound trigger routes, for the public HTTP listener.
pub fn routes(state: &AppState) -> Router {
    Router::new()
        .route("/triggers/{tenant}/{name}", post(receive))
        .route("/triggers/{tenant}/{name}/{secret}", post(receive_with_secret))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone())
}

async fn receive(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&state, &tenant, &name, None, &headers, &body).await
}

async fn receive_with_secret(
    State(state): State<AppState>,
    Path((tenant, name, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&state, &tenant, &name, Some(&secret), &headers, &body).await
}

/// A JSON answer: `{"error": ...}` or what was decided.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    answer(status, serde_json::json!({ "error": message }))
}

fn not_found() -> Response {
    refuse(404, "no trigger at this URL: the tenant, the trigger name or the secret in the path is wrong")
}

fn unavailable() -> Response {
    let mut r = refuse(503, "the event could not be stored; nothing was applied: please send it again");
    r.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER.as_secs().into());
    r
}

async fn handle(
    state: &AppState,
    tenant_id: &str,
    name: &str,
    path_secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let found = state.registry.get(tenant_id).and_then(|t| t.events.inbound.contains_key(name).then_some(t));
    let Some(tenant) = found else {
        state.metrics.inbound_event("refused");
        return not_found();
    };
    let trigger = &tenant.events.inbound[name];
    if let Err(refused) = authenticate(trigger, path_secret, headers, body) {
        state.metrics.inbound_event("refused");
        tracing::debug!(tenant = %tenant.id, trigger = %trigger.name, "inbound trigger refused: {}", refused.message);
        return refused.response();
    }
    let text = String::from_utf8_lossy(body);
    let header_id = matches!(trigger.auth, InboundAuth::StandardWebhooks { .. })
        .then(|| header_text(headers, "webhook-id"))
        .flatten();
    let reading = read::parse(trigger.format, body).and_then(|json| read::read(trigger, &json, body, header_id));
    let reading = match reading {
        Ok(r) => r,
        Err(bad) => return keep_invalid(state, &tenant, trigger, bad, &text).await,
    };
    let change = match account::inbound::read(&tenant, trigger, &reading.customer) {
        Ok(c) => c,
        Err(e) => return keep_invalid(state, &tenant, trigger, refusal_of(&e), &text).await,
    };
    let incoming = store::Incoming {
        tenant: &tenant.id,
        trigger: &trigger.name,
        dedupe_key: reading.dedupe_key,
        dedupe_window: (!reading.keyed_by_id).then_some(trigger.dedupe_window),
        customer: &change.number,
        sent_at: reading.sent_at,
        status: &reading.customer.status,
        previous_status: reading.previous_status.as_deref(),
        only_if_status_changed: trigger.status_changed,
        unmet: reading.unmet,
        action: trigger.action.as_str(),
        body: &text,
    };
    let decided = store::accept(&state.db, &incoming, async |conn| {
        account::inbound::record(conn, state, &tenant.id, &change).await
    })
    .await;
    let (verdict, claimed) = match decided {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(tenant = %tenant.id, trigger = %trigger.name, error = %e, "storing an inbound event failed");
            return unavailable();
        }
    };
    state.metrics.inbound_event(verdict.state());
    tracing::info!(
        tenant = %tenant.id, trigger = %trigger.name, event = verdict.id(), account = %change.number,
        state = verdict.state(), reason = verdict.reason(), "inbound event"
    );
    let status =
        if matches!(verdict, store::Verdict::Duplicate { .. }) { StatusCode::OK } else { StatusCode::ACCEPTED };
    let mut reply = serde_json::json!({
        "event": verdict.id(),
        "state": verdict.state(),
        "reason": verdict.reason(),
        "action": trigger.action.as_str(),
        "account_number": change.number,
    });
    if matches!(verdict, store::Verdict::Accepted { .. }) {
        let (key, asked) = change.answer();
        reply[key] = asked.into();
    }
    if let Some(Some(claim)) = claimed {
        account::inbound::deliver_soon(state, claim);
    }
    answer(status, reply)
}

/// Why a post was refused: its answer's status and message (logged at debug).
struct Refused {
    status: u16,
    message: String,
    /// Answered as an unknown trigger (a wrong path secret tells nothing more).
    as_not_found: bool,
    /// Answered with a `WWW-Authenticate: Basic` challenge.
    basic_challenge: bool,
}

impl Refused {
    fn response(&self) -> Response {
        if self.as_not_found {
            return not_found();
        }
        let mut r = refuse(self.status, &self.message);
        if self.basic_challenge {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, "Basic realm=\"patchbay\"".parse().expect("static"));
        }
        r
    }
}

fn refused(status: u16, message: impl Into<String>) -> Refused {
    Refused { status, message: message.into(), as_not_found: false, basic_challenge: false }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Equal in constant time (of the digests, so lengths tell nothing either).
fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())))
}

fn authenticate(
    trigger: &InboundTrigger,
    path_secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refused> {
    match (&trigger.auth, path_secret) {
        (InboundAuth::PathSecret(expected), Some(given)) if same_secret(given, expected.expose_secret()) => Ok(()),
        (InboundAuth::PathSecret(_), _) | (_, Some(_)) => {
            Err(Refused { as_not_found: true, ..refused(404, "wrong or missing path secret") })
        }
        (InboundAuth::Basic { username, password }, None) => {
            let given = header_text(headers, "authorization")
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            let ok = given.as_deref().and_then(|g| g.split_once(':')).is_some_and(|(user, pass)| {
                // Both compared, whichever fails.
                same_secret(user, username) & same_secret(pass, password.expose_secret())
            });
            if ok {
                return Ok(());
            }
            Err(Refused {
                basic_challenge: true,
                ..refused(401, "wrong or missing HTTP basic credentials for this trigger")
            })
        }
        (InboundAuth::StandardWebhooks { key, tolerance_secs }, None) => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let header = |name| header_text(headers, name).unwrap_or_default();
            key.verify(
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
                body,
                now,
                *tolerance_secs,
            )
            .map_err(|refusal| {
                let status = match refusal {
                    crate::ops::webhooks::Refusal::MissingHeader(_) | crate::ops::webhooks::Refusal::BadTimestamp => {
                        400
                    }
                    _ => 401,
                };
                refused(status, refusal.to_string())
            })
        }
    }
}

/// How an area's refusal of the customer reads to the sender: a bad field is 422 naming it, a
/// tenant setting that stops the action 409.
fn refusal_of(e: &ApiError) -> Unreadable {
    let status = match e.code {
        tonic::Code::InvalidArgument => 422,
        _ => 409,
    };
    let message = if e.violations.is_empty() {
        e.message.clone()
    } else {
        e.violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
    };
    Unreadable { status, message }
}

/// Keeps an authenticated post that could not be read or applied, and answers its 4xx.
async fn keep_invalid(
    state: &AppState,
    tenant: &Tenant,
    trigger: &InboundTrigger,
    bad: Unreadable,
    body: &str,
) -> Response {
    state.metrics.inbound_event("invalid");
    tracing::warn!(tenant = %tenant.id, trigger = %trigger.name, status = bad.status, reason = %bad.message, "inbound event refused");
    match store::keep_invalid(&state.db, &tenant.id, &trigger.name, &bad.message, body).await {
        Ok(id) => {
            let status = StatusCode::from_u16(bad.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            answer(status, serde_json::json!({ "error": bad.message, "event": id, "state": "invalid" }))
        }
        Err(e) => {
            tracing::error!(tenant = %tenant.id, error = %e, "keeping a refused inbound event failed");
            refuse(bad.status, &bad.message)
        }
    }
}
