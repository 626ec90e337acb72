//! Cross-cutting pieces every service uses: the error model, auth, idempotency and audit around
//! each call, retries, pagination, metrics.

pub mod auth;
pub mod call;
pub mod error;
pub mod metrics;
pub mod page;
pub mod periodic;
pub mod retry;

pub use call::TenantCall;
pub use error::{ApiError, FieldViolation, Violations};
