//! What Delacon sends when an order that answered WAIT completes: `POST
//! /callbacks/delacon/{tenant}/{callback_secret}` with form fields `OrderID`, `Result` (`OK` or
//! `FAIL`) and `Message`, and what it expects back (`{"RESULT":"ACCEPTED"}`, or `FAIL` with a
//! message, after which it tries again). This folder parses and answers; the provisioning area
//! (`provisioning::callbacks`) authenticates the tenant's secret, applies the outcome and audits it.

use axum::{
    Form, Json,
    extract::rejection::FormRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::wire::{self, Answer, Callback};
use crate::provisioning::provider::{CallbackReply, OrderOutcome, OrderState, clip};

/// Where Delacon's callbacks arrive; the full path is `{prefix}/{tenant}/{callback_secret}`.
pub const CALLBACK_PREFIX: &str = "/callbacks/delacon";
/// The route on the HTTP listener.
pub const ROUTE: &str = "/callbacks/delacon/{tenant}/{secret}";
/// The audit rows' method and caller for callbacks.
pub const AUDIT_METHOD: &str = "POST /callbacks/delacon";
pub const CALLER: &str = "vendor:delacon";

/// The longest callback message kept.
const MAX_MESSAGE_CHARS: usize = 1000;

/// The callback's order outcome, or the reply to a malformed one.
pub fn parse(form: Result<Form<Callback>, FormRejection>) -> Result<OrderOutcome, CallbackReply> {
    let malformed = |why: &str| CallbackReply::Malformed(why.to_owned());
    let Ok(Form(callback)) = form else {
        return Err(malformed("expected a form with OrderID, Result (OK or FAIL) and Message"));
    };
    let order_id = callback.order_id.trim();
    if order_id.is_empty() || order_id.len() > 64 || order_id.chars().any(char::is_control) {
        return Err(malformed("OrderID is required (at most 64 printable characters)"));
    }
    let state = match callback.result.trim() {
        wire::OK => OrderState::Completed,
        wire::FAIL => OrderState::Failed,
        _ => return Err(malformed("Result must be OK or FAIL")),
    };
    // Delacon's messages are a sentence; a longer one is kept clipped, as the client does.
    let message = clip(callback.message.trim(), MAX_MESSAGE_CHARS);
    Ok(OrderOutcome { order_id: order_id.to_owned(), state, message })
}

/// The area's reply, in Delacon's words: only `ACCEPTED` stops its retries.
pub fn reply(reply: CallbackReply) -> Response {
    match reply {
        CallbackReply::Accepted => {
            (StatusCode::OK, Json(Answer { result: Some(wire::ACCEPTED.into()), ..Answer::default() })).into_response()
        }
        CallbackReply::Malformed(message) => fail(StatusCode::BAD_REQUEST, message),
        CallbackReply::UnknownOrder(message) => fail(StatusCode::OK, message),
        CallbackReply::TryLater(message) => fail(StatusCode::SERVICE_UNAVAILABLE, message),
        CallbackReply::Failed(message) => fail(StatusCode::INTERNAL_SERVER_ERROR, message),
    }
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(Answer::result(wire::FAIL, message))).into_response()
}
