//! `tenant.reload_failed`: after each reload pass, a served tenant whose file now has problems
//! (the previous version is still served) is reported once per distinct set of problems. The
//! event id is derived from the problems, so replicas that all see the same file report it once.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::platform::{
    AppState,
    events::{self, Event, EventType},
};

pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut passes = state.registry.subscribe();
        // Tenant -> digest of the problems last reported (only tenants that have problems now).
        let mut reported: HashMap<String, String> = HashMap::new();
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                changed = passes.changed() => if changed.is_err() { return },
            }
            check(&state, &mut reported).await;
        }
    })
}

async fn check(state: &AppState, reported: &mut HashMap<String, String>) {
    let tenants = state.registry.tenants();
    reported.retain(|id, _| tenants.iter().any(|t| &t.id == id));
    for tenant in tenants {
        // Asked first: `file_errors` walks every file, and most tenants have no such endpoint.
        if !events::wanted(&tenant, EventType::ReloadFailed) {
            continue;
        }
        let problems = state.registry.file_errors(&tenant.id);
        if problems.is_empty() {
            reported.remove(&tenant.id);
            continue;
        }
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let digest = hex::encode(Sha256::digest(lines.join("\n").as_bytes()));
        if reported.get(&tenant.id) == Some(&digest) {
            continue;
        }
        let data = serde_json::json!({
            "tenant": tenant.id,
            "file": tenant.file.display().to_string(),
            "problems": lines,
            "served_since": chrono::DateTime::<chrono::Utc>::from(tenant.loaded_at).to_rfc3339(),
        });
        let event = Event::new(EventType::ReloadFailed, data).with_stable_id(&["reload_failed", &tenant.id, &digest]);
        match events::emit_alone(state, &tenant, &event).await {
            Ok(()) => {
                reported.insert(tenant.id.clone(), digest);
            }
            Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "reporting a failed reload failed"),
        }
    }
}
