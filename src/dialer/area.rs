//! The dialer area as tenant files configure it: its key under `triggers:` and its providers.
//! A new provider is one folder and one line in [`PROVIDERS`].

use std::sync::Arc;

use super::{elision, provider::DialerProvider, vicidial};
use crate::registry::{Area, AreaEntry, provider::ProviderSpec};

/// `triggers.dialer` of a tenant file.
pub struct DialerArea;

/// The dialer area's providers, one line each.
static PROVIDERS: &[ProviderSpec<Arc<dyn DialerProvider>>] = &[elision::PROVIDER, vicidial::PROVIDER];

impl Area for DialerArea {
    const KEY: &'static str = "dialer";
    type Trigger = Arc<dyn DialerProvider>;

    fn providers() -> &'static [ProviderSpec<Self::Trigger>] {
        PROVIDERS
    }
}

/// The area's `triggers:` key and providers, for the registry.
pub static TRIGGERS: AreaEntry = AreaEntry::of::<DialerArea>();
