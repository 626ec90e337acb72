//! What a tenant holds for the account area once its trigger is built.

use std::sync::Arc;

use super::{provider::AccountProvider, settings::AccountSettings};

/// What a tenant holds for the account area: its settings and its vendor's client.
#[derive(Clone)]
pub struct AccountTrigger {
    pub settings: Arc<AccountSettings>,
    pub provider: Arc<dyn AccountProvider>,
}

impl std::fmt::Debug for AccountTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountTrigger")
            .field("provider", &self.provider.name())
            .field("settings", &self.settings)
            .finish()
    }
}
