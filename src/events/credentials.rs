//! `tenant.credentials_refused`: the vendor clients note each refusal of a tenant's credentials
//! (`ops::vendor::CredentialRefusals`); this worker reports them, at most once an hour per tenant
//! and provider, and again as soon as the tenant's file changed (new credentials that fail too).
//! The event id is derived from the tenant, provider, file version and hour, so replicas that
//! all see the refusal report it once.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::task::JoinHandle;

use crate::platform::{
    AppState,
    events::{self, Event, EventType},
};

/// How often noted refusals are looked at.
const EVERY: Duration = Duration::from_secs(1);
/// At most one report per tenant, provider and file version in this period.
pub const QUIET: Duration = Duration::from_secs(3600);

pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        // (tenant, provider) -> (the file version reported, when).
        let mut reported: HashMap<(String, &'static str), (SystemTime, SystemTime)> = HashMap::new();
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (tenant_id, provider, message) in state.refusals.take() {
                let Some(tenant) = state.registry.get(&tenant_id) else { continue };
                let key = (tenant_id, provider);
                let now = SystemTime::now();
                let quiet = reported.get(&key).is_some_and(|(version, at)| {
                    *version == tenant.loaded_at && now.duration_since(*at).unwrap_or_default() < QUIET
                });
                if quiet || !events::wanted(&tenant, EventType::CredentialsRefused) {
                    continue;
                }
                let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let data = serde_json::json!({
                    "tenant": tenant.id,
                    "provider": provider,
                    "vendor_message": message,
                    "file": tenant.file.display().to_string(),
                });
                let (version, hour) = (secs(tenant.loaded_at).to_string(), (secs(now) / 3600).to_string());
                let event = Event::new(EventType::CredentialsRefused, data).with_stable_id(&[
                    "credentials",
                    &tenant.id,
                    provider,
                    &version,
                    &hour,
                ]);
                match events::emit_alone(&state, &tenant, &event).await {
                    Ok(()) => {
                        reported.insert(key, (tenant.loaded_at, now));
                    }
                    Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "reporting refused credentials failed"),
                }
            }
            // Only tenants still served are remembered.
            reported.retain(|(tenant, _), _| state.registry.get(tenant).is_some());
        }
    })
}
