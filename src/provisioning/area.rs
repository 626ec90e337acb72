//! The provisioning area as tenant files configure it: its key under `triggers:` and its
//! providers. A new provider is one folder and one line in [`PROVIDERS`].

use super::{delacon, trigger::ProvisioningTrigger};
use crate::registry::{
    AreaEntry,
    provider::{Area, ProviderSpec},
};

/// The `provisioning` trigger area.
pub struct ProvisioningArea;

impl Area for ProvisioningArea {
    const KEY: &'static str = "provisioning";
    type Trigger = ProvisioningTrigger;

    fn providers() -> &'static [ProviderSpec<ProvisioningTrigger>] {
        PROVIDERS
    }
}

/// The provisioning area's providers, one line each.
static PROVIDERS: &[ProviderSpec<ProvisioningTrigger>] = &[delacon::SPEC];

/// The area's `triggers:` key and providers, for the registry.
pub static TRIGGERS: AreaEntry = AreaEntry::of::<ProvisioningArea>();
