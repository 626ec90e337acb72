//! DialerService: agents, dial lists and lead export on a tenant's call-centre dialer.
//!
//! - [`grpc`]: the service's gRPC edge (the only place that sees generated types);
//! - [`provider`]: what a dialer vendor must do, in domain terms, and its errors;
//! - [`validate`]: the dialer document's field rules, checked before any vendor call;
//! - [`export`]: the lead-export pipeline (bounded, streaming, resumable by request_id);
//! - [`store`]: its PostgreSQL tables;
//! - [`elision`]: the first vendor.

pub mod elision;
pub mod export;
pub mod grpc;
pub mod provider;
pub mod store;
pub mod validate;

use std::sync::Arc;

use crate::registry::{Area, provider::ProviderSpec};

/// `triggers.dialer` of a tenant file.
pub struct DialerArea;

static PROVIDERS: [ProviderSpec<Arc<dyn provider::DialerProvider>>; 1] = [elision::PROVIDER];

impl Area for DialerArea {
    const KEY: &'static str = "dialer";
    type Trigger = Arc<dyn provider::DialerProvider>;

    fn providers() -> &'static [ProviderSpec<Self::Trigger>] {
        &PROVIDERS
    }
}
