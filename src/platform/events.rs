//! What the areas use to report events: [`emit`] stores one copy per subscribed endpoint of the
//! tenant in the caller's transaction (the outbox, `store::outbox`); after the commit,
//! [`Outbox::wake`] has this process's delivery worker send it at once (other replicas find it
//! at their next poll).

use sqlx::PgConnection;
use uuid::Uuid;

use super::state::AppState;
pub use crate::store::outbox::EventType;
use crate::{
    registry::Tenant,
    store::outbox::{self, EndpointCopy},
};

/// One event, before it is addressed to endpoints.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    /// The webhook id: the same for every endpoint and every attempt.
    pub id: Uuid,
    pub data: serde_json::Value,
    /// The data as endpoints with `include_passwords: true` get it (SIP passwords), when it differs.
    pub secret_data: Option<serde_json::Value>,
}

impl Event {
    pub fn new(kind: EventType, data: serde_json::Value) -> Self {
        Self { kind, id: Uuid::new_v4(), data, secret_data: None }
    }

    /// An id derived from `parts`, so that two replicas reporting the same thing store it once.
    pub fn with_stable_id(mut self, parts: &[&str]) -> Self {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        self.id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
        self
    }

    pub fn with_secret_data(mut self, data: serde_json::Value) -> Self {
        self.secret_data = Some(data);
        self
    }

    /// The body an endpoint receives: `{"type", "timestamp", "data"}`, as Standard Webhooks suggests.
    fn body(&self, with_secrets: bool) -> String {
        let data = match (&self.secret_data, with_secrets) {
            (Some(secret), true) => secret,
            _ => &self.data,
        };
        serde_json::json!({
            "type": self.kind.as_str(),
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": data,
        })
        .to_string()
    }
}

/// Stores `event` for each endpoint of `tenant` subscribed to its kind, in the caller's
/// transaction. `true` when any endpoint is subscribed (then wake the outbox after the commit).
pub async fn emit(conn: &mut PgConnection, tenant: &Tenant, event: &Event) -> Result<bool, sqlx::Error> {
    let copies: Vec<EndpointCopy<'_>> = tenant
        .events
        .subscribers(event.kind)
        .map(|e| EndpointCopy { endpoint: &e.name, payload: event.body(e.include_passwords) })
        .collect();
    if copies.is_empty() {
        return Ok(false);
    }
    outbox::enqueue(conn, event.id, &tenant.id, event.kind, &copies).await?;
    Ok(true)
}

/// Stores `event` in a transaction of its own (for what is not itself a database change: a
/// refused login, a failed reload, an export's end) and wakes the outbox.
pub async fn emit_alone(state: &AppState, tenant: &Tenant, event: &Event) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let stored = emit(&mut tx, tenant, event).await?;
    tx.commit().await?;
    if stored {
        state.outbox.wake();
    }
    Ok(())
}

/// Whether `tenant` has an endpoint for `kind`: an area may skip building an event nobody gets.
pub fn wanted(tenant: &Tenant, kind: EventType) -> bool {
    tenant.events.subscribers(kind).next().is_some()
}
