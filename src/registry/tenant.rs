//! A served tenant: its access tokens and its built triggers, each typed by its area.

use std::{any::Any, path::PathBuf, sync::Arc, time::SystemTime};

use super::provider::{Area, Trigger};
use crate::ops::{ApiError, auth::TokenHash};

/// What a tenant shows of one of its triggers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerInfo {
    pub area: &'static str,
    pub provider: &'static str,
    pub enabled: bool,
}

/// A served tenant: its access tokens and its built triggers.
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub file: PathBuf,
    pub tokens: Vec<TokenHash>,
    pub loaded_at: SystemTime,
    /// The triggers as written, secrets redacted (RegistryService.GetTenant).
    pub view: serde_json::Value,
    /// Its inbound triggers and outbound webhook endpoints (`events:`).
    pub events: Arc<super::events::TenantEvents>,
    pub(super) triggers: Vec<(TriggerInfo, Arc<dyn Any + Send + Sync>)>,
    pub(super) fingerprint: [u8; 32],
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").field("id", &self.id).field("triggers", &self.trigger_infos()).finish_non_exhaustive()
    }
}

impl Tenant {
    /// The tenant's trigger of area `A`, if its file declares one.
    ///
    /// Triggers are stored type-erased, since the registry does not know the areas; each is
    /// found by its area's key and typed by the area's own `Trigger` type, here only.
    pub fn trigger<A: Area>(&self) -> Option<Arc<Trigger<A::Trigger>>> {
        let (_, trigger) = self.triggers.iter().find(|(info, _)| info.area == A::KEY)?;
        Arc::clone(trigger).downcast::<Trigger<A::Trigger>>().ok()
    }

    /// The trigger of area `A`, or the `FAILED_PRECONDITION` a caller gets when it is missing or
    /// switched off (`enabled: false`).
    pub fn enabled_trigger<A: Area>(&self) -> Result<Arc<Trigger<A::Trigger>>, ApiError> {
        let trigger = self.trigger::<A>().ok_or_else(|| {
            ApiError::failed_precondition(
                "TRIGGER_NOT_CONFIGURED",
                format!("tenant `{}` has no `{}` trigger in its providers.d file", self.id, A::KEY),
            )
            .with_metadata("trigger", A::KEY)
        })?;
        if !trigger.enabled {
            return Err(ApiError::failed_precondition(
                "TRIGGER_DISABLED",
                format!("the `{}` trigger of tenant `{}` is disabled (enabled: false)", A::KEY, self.id),
            )
            .with_metadata("trigger", A::KEY)
            .with_metadata("provider", trigger.provider));
        }
        Ok(trigger)
    }

    pub fn trigger_infos(&self) -> Vec<TriggerInfo> {
        self.triggers.iter().map(|(info, _)| info.clone()).collect()
    }
}
