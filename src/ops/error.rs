//! The error every caller sees.
//!
//! Each service area has its own error enum (thiserror) and one exhaustive `From<AreaError> for
//! ApiError`; this module owns the single mapping from `ApiError` to `tonic::Status`, with the
//! rich details of Google AIP-193: always an `ErrorInfo`, `BadRequest` field violations for bad
//! fields, `RetryInfo` when trying again later can succeed. Internal causes are logged with an
//! error id and never sent.

use std::{borrow::Cow, collections::HashMap, fmt, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of errors that patchbay itself decides (as opposed to a vendor's).
pub const DOMAIN: &str = "patchbay.dev";

/// One bad field of a request: `field` is the proto field path (`customer.nickname`,
/// `agent.user`), `description` says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// A caller-facing error: a gRPC code, a machine-readable reason and a human message.
///
/// Boxed, so that `Result<T, ApiError>` stays one pointer wide on the happy path; its fields
/// are reached through `Deref` (`err.code`, `err.reason`).
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorBody>);

/// The fields of an [`ApiError`].
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: Code,
    /// UPPER_SNAKE reason for `ErrorInfo.reason`.
    pub reason: Cow<'static, str>,
    /// `ErrorInfo.domain`: [`DOMAIN`] or the vendor's domain when the vendor decided.
    pub domain: Cow<'static, str>,
    pub message: String,
    /// `ErrorInfo.metadata`: the vendor's own code, the tenant's trigger, ...; never secrets.
    pub metadata: HashMap<String, String>,
    pub violations: Vec<FieldViolation>,
    /// Sent as `RetryInfo`: the call may succeed if retried after this delay.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody {
            code,
            reason: reason.into(),
            domain: Cow::Borrowed(DOMAIN),
            message: message.into(),
            metadata: HashMap::new(),
            violations: Vec::new(),
            retry_after: None,
        }))
    }

    /// `INVALID_ARGUMENT` for one bad field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldViolation::new(field, description)])
    }

    /// `INVALID_ARGUMENT` listing every bad field at once, so a caller fixes them in one round.
    pub fn invalid_fields(violations: Vec<FieldViolation>) -> Self {
        let message = match violations.as_slice() {
            [one] => format!("{}: {}", one.field, one.description),
            many => format!(
                "{} invalid fields: {}",
                many.len(),
                many.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
            ),
        };
        let mut err = Self::new(Code::InvalidArgument, "INVALID_FIELD", message);
        err.violations = violations;
        err
    }

    pub fn not_found(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, reason, message)
    }

    pub fn failed_precondition(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, reason, message)
    }

    pub fn unauthenticated(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, reason, message)
    }

    pub fn permission_denied(reason: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, reason, message)
    }

    /// `UNAVAILABLE` with `RetryInfo`: a dependency is down or slow; the same call may work later.
    pub fn unavailable(
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        let mut err = Self::new(Code::Unavailable, reason, message);
        err.retry_after = Some(retry_after);
        err
    }

    /// `UNKNOWN`, reason `VENDOR_OUTCOME_UNKNOWN`: a change was sent to the vendor and no clear
    /// answer came back (a timeout, a 5xx, an unreadable body), so it may or may not have been
    /// applied. Not `UNAVAILABLE`, which tells callers a retry is safe: here a blind retry could
    /// apply the change twice. The message should say how to find out (which read to make).
    pub fn outcome_unknown(provider: &str, message: impl Into<String>) -> Self {
        Self::new(Code::Unknown, "VENDOR_OUTCOME_UNKNOWN", message).with_metadata("provider", provider)
    }

    /// `INTERNAL`: the cause is logged with an error id; the caller gets only the id.
    /// A database failure: `UNAVAILABLE` with RetryInfo when PostgreSQL cannot be reached (no
    /// connection within the pool's short acquire timeout, a connection lost, the server shutting
    /// down), since a retry once it is back succeeds; anything else is `INTERNAL`.
    pub fn database(context: &str, cause: &sqlx::Error) -> Self {
        let unreachable = match cause {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
            // SQLSTATE class 08 (connection exception), 57P01-57P03 (shutdown, cannot connect now).
            sqlx::Error::Database(e) => {
                e.code().is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03"))
            }
            _ => false,
        };
        if unreachable {
            tracing::warn!(context, error = %cause, "the database is unreachable");
            return Self::new(
                Code::Unavailable,
                "DATABASE_UNAVAILABLE",
                format!("patchbay's database cannot be reached ({context}); retry once it is back"),
            )
            .with_retry_after(Duration::from_secs(2));
        }
        // 22021 (a NUL byte), 22P05: text PostgreSQL cannot store. The edge refuses control
        // characters in the fields it knows; this is the net under every other string.
        if let sqlx::Error::Database(e) = cause
            && e.code().is_some_and(|c| matches!(c.as_ref(), "22021" | "22P05"))
        {
            return Self::new(
                Code::InvalidArgument,
                "TEXT_NOT_STORABLE",
                format!(
                    "a text field of the request holds a character that cannot be stored (a NUL byte?) ({context})"
                ),
            );
        }
        Self::internal(context, cause)
    }

    pub fn internal(context: &str, cause: &dyn fmt::Display) -> Self {
        let error_id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error_id = %error_id, context, error = %cause, "internal error");
        Self::new(
            Code::Internal,
            "INTERNAL",
            format!("internal error (error id {error_id}); the details are in the server log"),
        )
        .with_metadata("error_id", error_id)
    }

    pub fn with_domain(mut self, domain: impl Into<Cow<'static, str>>) -> Self {
        self.domain = domain.into();
        self
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The `FieldViolation.field` paths, e.g. for tests and logs.
    pub fn fields(&self) -> Vec<&str> {
        self.violations.iter().map(|v| v.field.as_str()).collect()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl std::ops::Deref for ApiError {
    type Target = ErrorBody;

    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorBody {
        &mut self.0
    }
}

/// The one mapping from patchbay's errors to the wire.
/// Bytes of an answer's message, at most: messages may echo what the caller sent (a tenant, a
/// field), and an oversized `grpc-message` header would make the client see RESOURCE_EXHAUSTED
/// or a broken connection instead of the error.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Bytes of a field violation's description or an ErrorInfo metadata value, at most.
pub const MAX_DETAIL_BYTES: usize = 512;

/// `s` cut to at most `max` bytes on a character boundary, `…` marking the cut.
pub fn capped(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let err = *err.0;
        let mut details = ErrorDetails::new();
        let metadata: HashMap<String, String> =
            err.metadata.into_iter().map(|(k, v)| (k, capped(v, MAX_DETAIL_BYTES))).collect();
        details.set_error_info(err.reason.into_owned(), err.domain.into_owned(), metadata);
        for v in err.violations {
            details
                .add_bad_request_violation(capped(v.field, MAX_DETAIL_BYTES), capped(v.description, MAX_DETAIL_BYTES));
        }
        if let Some(delay) = err.retry_after {
            details.set_retry_info(Some(delay));
        }
        Status::with_error_details(err.code, capped(err.message, MAX_MESSAGE_BYTES), details)
    }
}

/// Collects field violations so a request's every problem is reported in one answer.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records a violation when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many violations so far (a rule that adds to an earlier one can tell whether it did).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(())` when nothing was recorded, else one `INVALID_ARGUMENT` with them all.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::invalid_fields(self.0)) }
    }
}

/// The canonical name of a gRPC code (`INVALID_ARGUMENT`), for audit rows and metrics.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn capped_text_keeps_whole_characters_and_marks_the_cut() {
        assert_eq!(capped("short".into(), 10), "short");
        let cut = capped("é".repeat(600), MAX_DETAIL_BYTES);
        assert!(cut.len() <= MAX_DETAIL_BYTES && cut.ends_with('…'), "{}", cut.len());
        let status =
            Status::from(ApiError::invalid_field("tenant", "x".repeat(5000)).with_metadata("v", "y".repeat(5000)));
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let details = tonic_types::StatusExt::get_error_details(&status);
        assert!(details.bad_request().unwrap().field_violations[0].description.len() <= MAX_DETAIL_BYTES);
        assert!(details.error_info().unwrap().metadata["v"].len() <= MAX_DETAIL_BYTES);
    }

    use super::*;

    #[test]
    fn status_carries_error_info_bad_request_and_retry_info() {
        let mut v = Violations::new();
        v.add("customer.nickname", "must be 3-25 characters");
        v.add("billing_cycle_day", "must be 1-28");
        let err = v.into_result().unwrap_err().with_retry_after(Duration::from_secs(2));
        let status = Status::from(err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("2 invalid fields"), "{}", status.message());
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.reason, "INVALID_FIELD");
        assert_eq!(info.domain, DOMAIN);
        let fields: Vec<_> = details.bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
        assert_eq!(fields, ["customer.nickname", "billing_cycle_day"]);
        assert_eq!(details.retry_info().unwrap().retry_delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn internal_errors_send_an_error_id_but_not_the_cause() {
        let status = Status::from(ApiError::internal("test", &"password=hunter2 leaked"));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.metadata["error_id"].len(), 32);
    }

    #[test]
    fn no_violations_is_ok() {
        assert!(Violations::new().into_result().is_ok());
    }
}
