//! The one vocabulary of vendor failures that every area shares, and its one mapping to what
//! callers see. An area's own error enum wraps it (`Vendor(VendorError)`) beside the refusals
//! only its domain knows (an account that does not exist, an agent that already does), so the
//! same failure reads the same in AccountService, DialerService and ProvisioningService:
//!
//! | failure | code | reason |
//! |---|---|---|
//! | credentials refused | `FAILED_PRECONDITION` | `VENDOR_AUTH_FAILED` |
//! | operation not allowed for the tenant's user | `FAILED_PRECONDITION` | `VENDOR_PERMISSION_DENIED` |
//! | the vendor's answer shows wrong tenant settings | `FAILED_PRECONDITION` | `VENDOR_MISCONFIGURED` (+ `tenant_key`) |
//! | the vendor refused the request's data | `INVALID_ARGUMENT` | `VENDOR_VALIDATION_FAILED` |
//! | a definite refusal (the same request gets the same answer) | `FAILED_PRECONDITION` | `VENDOR_REJECTED` |
//! | nothing changed, try later | `UNAVAILABLE` + `RetryInfo` | `VENDOR_UNAVAILABLE` |
//! | a change without a clear answer | `UNKNOWN` | `VENDOR_OUTCOME_UNKNOWN` (+ `provider`) |
//!
//! Every one carries the vendor's ErrorInfo domain and, in metadata, `vendor_code`,
//! `vendor_message` and `http_status` when there was one.

use std::time::Duration;

use tonic::Code;

use super::ApiError;

/// What a vendor said, for ErrorInfo. Never holds a secret: clients scrub before they build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorFault {
    /// `ErrorInfo.domain`, e.g. `alianza.com`.
    pub domain: &'static str,
    pub http_status: Option<u16>,
    /// The vendor's own code (`AccountNumberInUse`, `LOGIN_FAILED`), or `TIMEOUT`, `HTTP_500`, ...
    pub code: String,
    /// The vendor's words.
    pub message: String,
}

impl VendorFault {
    /// `err` with what the vendor said: its domain, and `vendor_code`, `vendor_message` and
    /// `http_status` (when there was one) in metadata.
    pub fn annotate(self, err: ApiError) -> ApiError {
        let err = err
            .with_domain(self.domain)
            .with_metadata("vendor_code", self.code)
            .with_metadata("vendor_message", self.message);
        match self.http_status {
            Some(status) => err.with_metadata("http_status", status.to_string()),
            None => err,
        }
    }
}

/// How a vendor call failed, in terms every area shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorFailure {
    /// The vendor refused the tenant's credentials: an operator fixes the tenant file.
    /// `locked_out`: the vendor has also locked the user after too many failed logins.
    AuthFailed { locked_out: bool },
    /// The credentials work but the tenant's vendor user may not do this.
    PermissionDenied,
    /// The answer shows the tenant's connection settings are wrong (a 404 on the base path, an
    /// unknown partition); `keys` names the tenant keys to check (`triggers.account.api_url`).
    Misconfigured { keys: &'static str },
    /// The vendor refused the request's data.
    Invalid,
    /// A definite refusal: the same request gets the same answer, so it is not retried.
    Rejected,
    /// Unreachable, overloaded, or a read that kept failing: nothing changed; trying again later is safe.
    Unavailable { retry_after: Duration },
    /// A change was sent and no clear answer came back: it may or may not have been made, and is
    /// never sent again blindly. The message says how to find out.
    OutcomeUnknown,
}

/// A vendor call's failure: what kind, which provider, what the vendor said, and the message a
/// caller reads (in the area's words: the area knows what the call was for).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VendorError {
    pub failure: VendorFailure,
    /// The provider's registry name (`alianza`): callers see it with an unknown outcome, as
    /// whose portal to check. May be empty where the area words that itself.
    pub provider: &'static str,
    pub fault: VendorFault,
    pub message: String,
}

impl VendorError {
    pub fn new(failure: VendorFailure, provider: &'static str, fault: VendorFault, message: impl Into<String>) -> Self {
        Self { failure, provider, fault, message: message.into() }
    }

    /// Whether the same call may work later without anyone fixing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self.failure, VendorFailure::Unavailable { .. } | VendorFailure::OutcomeUnknown)
    }

    /// Whether the tenant's configuration must be fixed before any call can work.
    pub fn is_tenant_problem(&self) -> bool {
        matches!(
            self.failure,
            VendorFailure::AuthFailed { .. } | VendorFailure::PermissionDenied | VendorFailure::Misconfigured { .. }
        )
    }
}

/// The one mapping of vendor failures to what callers see (see the table above).
impl From<VendorError> for ApiError {
    fn from(err: VendorError) -> Self {
        let VendorError { failure, provider, fault, message } = err;
        let api = match failure {
            VendorFailure::AuthFailed { locked_out } => {
                let e = ApiError::failed_precondition("VENDOR_AUTH_FAILED", message);
                if locked_out { e.with_metadata("api_user_locked", "true") } else { e }
            }
            VendorFailure::PermissionDenied => ApiError::failed_precondition("VENDOR_PERMISSION_DENIED", message),
            VendorFailure::Misconfigured { keys } => {
                ApiError::failed_precondition("VENDOR_MISCONFIGURED", message).with_metadata("tenant_key", keys)
            }
            VendorFailure::Invalid => ApiError::new(Code::InvalidArgument, "VENDOR_VALIDATION_FAILED", message),
            VendorFailure::Rejected => ApiError::failed_precondition("VENDOR_REJECTED", message),
            VendorFailure::Unavailable { retry_after } => {
                ApiError::unavailable("VENDOR_UNAVAILABLE", message, retry_after)
            }
            VendorFailure::OutcomeUnknown => ApiError::outcome_unknown(provider, message),
        };
        fault.annotate(api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(http_status: Option<u16>) -> VendorFault {
        VendorFault { domain: "vendor.example", http_status, code: "CODE".into(), message: "said no".into() }
    }

    #[test]
    fn each_failure_has_one_code_and_reason_with_the_vendors_words_in_metadata() {
        let cases = [
            (VendorFailure::AuthFailed { locked_out: false }, Code::FailedPrecondition, "VENDOR_AUTH_FAILED"),
            (VendorFailure::PermissionDenied, Code::FailedPrecondition, "VENDOR_PERMISSION_DENIED"),
            (
                VendorFailure::Misconfigured { keys: "triggers.x.api_url" },
                Code::FailedPrecondition,
                "VENDOR_MISCONFIGURED",
            ),
            (VendorFailure::Invalid, Code::InvalidArgument, "VENDOR_VALIDATION_FAILED"),
            (VendorFailure::Rejected, Code::FailedPrecondition, "VENDOR_REJECTED"),
            (
                VendorFailure::Unavailable { retry_after: Duration::from_secs(3) },
                Code::Unavailable,
                "VENDOR_UNAVAILABLE",
            ),
            (VendorFailure::OutcomeUnknown, Code::Unknown, "VENDOR_OUTCOME_UNKNOWN"),
        ];
        for (failure, code, reason) in cases {
            let api = ApiError::from(VendorError::new(failure.clone(), "acme", fault(Some(503)), "the message"));
            assert_eq!((api.code, api.reason.as_ref()), (code, reason), "{failure:?}");
            assert_eq!(api.message, "the message");
            assert_eq!(api.domain, "vendor.example");
            assert_eq!(api.metadata["vendor_code"], "CODE");
            assert_eq!(api.metadata["vendor_message"], "said no");
            assert_eq!(api.metadata["http_status"], "503");
        }
    }

    #[test]
    fn the_extras_of_a_failure_reach_the_caller() {
        let locked =
            ApiError::from(VendorError::new(VendorFailure::AuthFailed { locked_out: true }, "acme", fault(None), "m"));
        assert_eq!(locked.metadata["api_user_locked"], "true");
        assert!(!locked.metadata.contains_key("http_status"));
        let misconfigured = ApiError::from(VendorError::new(
            VendorFailure::Misconfigured { keys: "triggers.x.api_url" },
            "acme",
            fault(None),
            "m",
        ));
        assert_eq!(misconfigured.metadata["tenant_key"], "triggers.x.api_url");
        let unknown = ApiError::from(VendorError::new(VendorFailure::OutcomeUnknown, "acme", fault(None), "m"));
        assert_eq!(unknown.metadata["provider"], "acme");
        assert!(VendorError::new(VendorFailure::OutcomeUnknown, "acme", fault(None), "m").is_transient());
        assert!(!VendorError::new(VendorFailure::Rejected, "acme", fault(None), "m").is_transient());
    }
}
