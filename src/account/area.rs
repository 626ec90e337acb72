//! The account area as tenant files configure it: its key under `triggers:` and its providers.
//! A new provider is one folder and one line in [`PROVIDERS`].

use super::{alianza, trigger::AccountTrigger};
use crate::registry::{
    AreaEntry,
    provider::{Area, ProviderSpec},
};

/// The `account` area of tenant files.
pub struct AccountArea;

/// The account area's providers, one line each.
static PROVIDERS: &[ProviderSpec<AccountTrigger>] = &[alianza::SPEC];

impl Area for AccountArea {
    const KEY: &'static str = "account";
    type Trigger = AccountTrigger;

    fn providers() -> &'static [ProviderSpec<AccountTrigger>] {
        PROVIDERS
    }
}

/// The area's `triggers:` key and providers, for the registry.
pub static TRIGGERS: AreaEntry = AreaEntry::of::<AccountArea>();
