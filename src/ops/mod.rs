//! The bottom of the spine: the error model, auth, retries, pagination, metrics, and the one
//! layer every vendor HTTP call goes through ([`vendor`]). It imports nothing else of patchbay.

pub mod auth;
pub mod conn;
pub mod error;
pub mod mask;
pub mod metrics;
pub mod page;
pub mod reflection;
pub mod retry;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod vendor;
pub mod vendor_error;
pub mod webhooks;

pub use error::{ApiError, FieldViolation, Violations};

/// A time as the proto's `*_at` fields carry it (a `google.protobuf.Timestamp`, always set).
pub fn timestamp(t: impl Into<std::time::SystemTime>) -> Option<prost_types::Timestamp> {
    Some(t.into().into())
}
