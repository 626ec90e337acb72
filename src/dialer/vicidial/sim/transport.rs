//! The HTTP side of the script: the handler, with the hooks tests use (call counts, faults
//! before and after a call), around one call on the state.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, Uri},
    response::{IntoResponse, Response},
};

use super::{
    exchange::Params,
    state::{Function, SimState},
};
use crate::sim::{Calls, Faults};

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) state: Arc<Mutex<SimState>>,
    pub(super) faults: Faults,
    pub(super) faults_after: Faults,
    pub(super) calls: Calls,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, SimState> {
        // A panic in a handler cannot leave the state half-written in a way that matters to a test.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The name a call is counted under: the known functions by name, anything else lumped
/// together so that random names cannot grow the counters.
fn call_name(function: &str) -> &str {
    match function {
        "" => "(none)",
        "version" => "version",
        f => Function::parse(f).map_or("(other)", Function::name),
    }
}

/// The fault key: the function name; add_lead's also names the phone as sent, so a test can
/// fail one lead (`add_lead 7275551212`) or all of them (`add_lead`).
fn fault_key(function: &str, p: &Params) -> String {
    if function == "add_lead" { format!("add_lead {}", p.raw("phone_number")) } else { function.to_owned() }
}

pub(super) async fn handle(
    State(sim): State<Shared>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = Params::parse(&method, &headers, uri.query(), &body);
    let function = params.get("function");
    sim.calls.record(call_name(&function));
    let key = fault_key(&function, &params);
    if let Some(resp) = sim.faults.intercept(&key).await {
        return resp;
    }
    // The state lock is taken and released within this statement, never across an await.
    let answer = sim.state().call(&function, &params, Instant::now());
    if let Some(resp) = sim.faults_after.intercept(&key).await {
        return resp;
    }
    answer.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_of_unknown_functions_share_one_counter() {
        assert_eq!(call_name("add_lead"), "add_lead");
        assert_eq!(call_name("version"), "version");
        assert_eq!(call_name("made_up_123"), "(other)");
        assert_eq!(call_name(""), "(none)");
    }
}
