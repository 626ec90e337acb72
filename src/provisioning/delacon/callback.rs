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
//! The URL holds the secret, so it is never logged; logs name the tenant and the order.

use std::time::Instant;

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
    PROVIDER,
    wire::{self, Answer, Callback},
};
use crate::{
    app::AppState,
    provisioning::{
        ProvisioningArea,
        provider::{OrderOutcome, OrderState},
        store::{self, CallbackEffect},
    },
    store::audit,
};

/// Where Delacon's callbacks arrive; the full path is `{prefix}/{tenant}/{callback_secret}`.
pub const CALLBACK_PREFIX: &str = "/callbacks/delacon";

/// The audit rows' method for callbacks.
const AUDIT_METHOD: &str = "POST /callbacks/delacon";

/// The callback route, for the HTTP listener.
pub fn routes(state: AppState) -> Router {
    Router::new().route(&format!("{CALLBACK_PREFIX}/{{tenant}}/{{secret}}"), post(receive)).with_state(state)
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
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<Callback>, FormRejection>,
) -> Response {
    let started = Instant::now();
    let Ok(Path((tenant, secret))) = path else { return not_found() };
    if !authorized(&state, &tenant, &secret) {
        tracing::warn!(%tenant, "Delacon callback refused: unknown tenant or wrong callback secret");
        return not_found();
    }
    let Ok(Form(callback)) = form else {
        return fail(StatusCode::BAD_REQUEST, "expected a form with OrderID, Result (OK or FAIL) and Message");
    };
    let order_id = callback.order_id.trim();
    if order_id.is_empty() || order_id.len() > 64 {
        return fail(StatusCode::BAD_REQUEST, "OrderID is required (at most 64 characters)");
    }
    let order_state = match callback.result.trim() {
        wire::OK => OrderState::Completed,
        wire::FAIL => OrderState::Failed,
        _ => return fail(StatusCode::BAD_REQUEST, "Result must be OK or FAIL"),
    };
    let outcome = OrderOutcome { order_id: order_id.to_owned(), state: order_state, message: callback.message };
    let effect = match store::apply_callback(&state.db, &tenant, &outcome).await {
        Ok(effect) => effect,
        Err(e) => {
            tracing::error!(%tenant, order_id, error = %e, "storing a Delacon callback failed");
            // Not ACCEPTED: Delacon tries again.
            return fail(StatusCode::INTERNAL_SERVER_ERROR, "temporary failure; please try again");
        }
    };
    let (outcome_code, reason, response) = match effect {
        CallbackEffect::Applied => {
            tracing::info!(%tenant, order_id, state = order_state.as_str(), "order callback applied");
            ("OK", "", accepted())
        }
        CallbackEffect::Duplicate { conflicting } => {
            if conflicting {
                tracing::warn!(%tenant, order_id, "a callback contradicts the order's final state; the first outcome stands");
            }
            ("OK", "DUPLICATE_CALLBACK", accepted())
        }
        CallbackEffect::Held => {
            tracing::info!(%tenant, order_id, "order callback held until the order's answer is stored");
            ("OK", "CALLBACK_BEFORE_ORDER", accepted())
        }
        CallbackEffect::UnknownOrder => {
            tracing::warn!(%tenant, order_id, "a callback names an unknown order");
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
