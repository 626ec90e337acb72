//! AccountService: hosted-voice accounts as the CRM's customer page uses them: the status panel,
//! account creation, SIP-line sync into the CRM's custom table, the automatic status follow-up and
//! deletion.
//!
//! - [`provider`]: the contract every vendor implements, and the domain types.
//! - [`settings`]: what the area needs from `triggers.account` whatever the vendor.
//! - [`sip_sync`]: the pure plan of a FULL / ADD_ONLY sync.
//! - [`store`]: the SIP table and the desired statuses in PostgreSQL.
//! - [`reconciler`]: delivers desired statuses, now or later (the background worker).
//! - [`grpc`]: the gRPC edge; generated types stop there.
//! - [`alianza`]: the first vendor (client, wire format, config, simulator).

pub mod alianza;
pub mod grpc;
pub mod provider;
pub mod reconciler;
pub mod settings;
pub mod sip_sync;
pub mod store;

use std::sync::Arc;

use crate::{
    platform::{AppState, AreaSpec, GrpcServices},
    proto::v1::account_service_server::AccountServiceServer,
    registry::{
        AreaEntry,
        provider::{Area, ProviderSpec},
    },
};
pub use provider::AccountProvider;
pub use settings::AccountSettings;

/// The `account` area of tenant files.
pub struct AccountArea;

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

/// Everything this area brings to the server.
pub static AREA: AreaSpec = AreaSpec {
    name: "account",
    triggers: Some(&TRIGGERS),
    grpc: |state: &AppState, services: &mut GrpcServices| {
        services.add(AccountServiceServer::new(grpc::AccountGrpc::new(state.clone())))
    },
    routes: AreaSpec::no_routes,
    workers: |state: &AppState| vec![reconciler::spawn(state.clone())],
};
