//! What a dialer vendor must do for DialerService, in domain terms: the provider trait, its
//! types, and the one mapping of its errors to [`ApiError`].

use std::{fmt, time::Duration};

use secrecy::SecretString;
use tonic::Code;

use crate::ops::ApiError;

/// An agent (a dialer user), for a create or an update. `None` is "not sent": on an update, the
/// dialer keeps its value. Passwords are secrets: never logged, never answered, never audited.
#[derive(Default)]
pub struct Agent {
    pub user: String,
    pub password: Option<SecretString>,
    /// 1-9 once validated (kept wide so that an out-of-range value is reported, not truncated).
    pub level: Option<i32>,
    pub full_name: Option<String>,
    pub group: Option<String>,
    pub phone_login: Option<String>,
    pub phone_password: Option<SecretString>,
    pub voicemail_id: Option<String>,
    pub email: Option<String>,
    /// Updates only: `Some(false)` deactivates, `Some(true)` reactivates.
    pub active: Option<bool>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written out so that a future field cannot leak a password through a derived Debug.
        f.debug_struct("Agent")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("level", &self.level)
            .field("full_name", &self.full_name)
            .field("group", &self.group)
            .field("phone_login", &self.phone_login)
            .field("phone_password", &self.phone_password.as_ref().map(|_| "<redacted>"))
            .field("voicemail_id", &self.voicemail_id)
            .field("email", &self.email)
            .field("active", &self.active)
            .finish()
    }
}

/// A dial list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialList {
    pub list_id: String,
    pub name: String,
    pub campaign_id: String,
    pub active: bool,
}

/// A lead to export. `phone_number` is normalised (digits only) once it has passed the checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lead {
    pub phone_number: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub city: String,
    pub postal_code: String,
    pub vendor_lead_code: String,
}

/// What the dialer made of one lead of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadOutcome {
    /// Added; the dialer's lead id.
    Accepted { lead_id: String },
    /// Refused, for this reason.
    Rejected { error: String },
    /// The dialer's answer said nothing usable about this lead: it may or may not be in the list.
    Unknown { error: String },
}

/// The dialer's acknowledgement of a mutation: its answer, secrets removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub vendor_message: String,
}

/// How a vendor wants lead batches: the pipeline sizes and overlaps its calls by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportShape {
    /// Batch calls in flight at once.
    pub concurrency: usize,
    /// Leads per call, at most.
    pub max_leads_per_call: usize,
    /// Bytes of leads per call, at most, as [`DialerProvider::lead_wire_size`] counts them.
    pub max_bytes_per_call: usize,
}

/// A dialer vendor. One implementation per vendor folder; the registry builds it from a
/// tenant's `triggers.dialer`.
#[tonic::async_trait]
pub trait DialerProvider: Send + Sync + 'static {
    async fn create_agent(&self, agent: &Agent) -> Result<Ack, DialerError>;
    async fn update_agent(&self, agent: &Agent) -> Result<Ack, DialerError>;
    async fn create_list(&self, list: &DialList) -> Result<Ack, DialerError>;
    /// The dialer's active lists. A read: safe to retry, and the provider does.
    async fn active_lists(&self) -> Result<Vec<DialList>, DialerError>;
    /// Adds a batch of leads to `list_id`; one outcome per lead, in order. Not retried by the
    /// provider: the caller decides from [`Delivery`] whether a retry could add a lead twice.
    async fn add_leads(&self, list_id: &str, leads: &[Lead]) -> Result<Vec<LeadOutcome>, DialerError>;
    fn export_shape(&self) -> ExportShape;
    /// The bytes `lead` takes in a batch call (`None`: too big for any call).
    fn lead_wire_size(&self, lead: &Lead) -> Option<usize>;
}

/// Why the dialer refused a call, in domain terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AgentExists,
    ListExists,
    AgentNotFound,
    UserGroupNotFound,
    CampaignNotFound,
    /// The dialer refused the tenant's API login (wrong credentials, or locked out).
    AuthFailed,
    /// The tenant's API user lacks a permission (or a high enough user level) for this.
    PermissionDenied,
    /// The dialer refused a field of the request: its proto path.
    InvalidField(&'static str),
    /// Anything else the dialer said no to.
    Other,
}

/// Whether a call whose answer did not come back may have been carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The dialer did not take it (no connection, or it answered 5xx): safe to send again.
    NotTaken,
    /// Sent, answer lost (timeout, unreadable answer): sending again could apply it twice.
    Unknown,
}

/// A vendor call that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DialerError {
    /// The dialer answered, and said no.
    #[error("{message}")]
    Refused {
        kind: Refusal,
        /// ErrorInfo domain of the vendor (`elision.com`).
        domain: &'static str,
        /// A short, stable form of the vendor's answer (`USER ALREADY EXISTS`).
        vendor_code: String,
        /// The vendor's answer, secrets removed.
        message: String,
    },
    /// The dialer did not answer usably.
    #[error("{message}")]
    Unavailable {
        /// `VENDOR_UNAVAILABLE`, `VENDOR_TIMEOUT` or `VENDOR_BAD_RESPONSE`.
        reason: &'static str,
        domain: &'static str,
        message: String,
        delivery: Delivery,
    },
}

impl DialerError {
    /// Whether a mutation that failed this way may be sent again without risk of applying it twice.
    pub fn safe_to_resend(&self) -> bool {
        matches!(self, Self::Unavailable { delivery: Delivery::NotTaken, .. })
    }

    /// Whether the tenant's configuration must be fixed before any call can work.
    pub fn is_tenant_problem(&self) -> bool {
        matches!(self, Self::Refused { kind: Refusal::AuthFailed | Refusal::PermissionDenied, .. })
    }
}

/// How long a caller should wait before retrying a call that met an unavailable dialer.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The one mapping of dialer errors to what callers see.
impl From<DialerError> for ApiError {
    fn from(err: DialerError) -> Self {
        match err {
            DialerError::Refused { kind, domain, vendor_code, message } => {
                let text = format!("the dialer refused: {message}");
                let base = match kind {
                    Refusal::AgentExists => ApiError::new(Code::AlreadyExists, "AGENT_ALREADY_EXISTS", text),
                    Refusal::ListExists => ApiError::new(Code::AlreadyExists, "LIST_ALREADY_EXISTS", text),
                    Refusal::AgentNotFound => ApiError::not_found("AGENT_NOT_FOUND", text),
                    Refusal::UserGroupNotFound => ApiError::failed_precondition("USER_GROUP_NOT_FOUND", text),
                    Refusal::CampaignNotFound => ApiError::failed_precondition("CAMPAIGN_NOT_FOUND", text),
                    Refusal::AuthFailed => ApiError::failed_precondition(
                        "VENDOR_AUTH_FAILED",
                        format!("{text} (the tenant's dialer username or password must be fixed)"),
                    ),
                    Refusal::PermissionDenied => ApiError::failed_precondition(
                        "VENDOR_PERMISSION_DENIED",
                        format!("{text} (the tenant's dialer API user needs more rights)"),
                    ),
                    Refusal::InvalidField(field) => {
                        let mut e = ApiError::invalid_field(field, format!("refused by the dialer: {message}"));
                        e.message = text;
                        e
                    }
                    Refusal::Other => ApiError::failed_precondition("VENDOR_REJECTED", text),
                };
                base.with_domain(domain)
                    .with_metadata("vendor_code", vendor_code)
                    .with_metadata("vendor_message", message)
            }
            DialerError::Unavailable { reason, domain, message, .. } => {
                ApiError::unavailable(reason, format!("the dialer is unavailable: {message}"), RETRY_AFTER)
                    .with_domain(domain)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_debug_output_never_shows_its_passwords() {
        let agent = Agent {
            user: "1000".into(),
            password: Some("hunter2".to_owned().into()),
            phone_password: Some("s3cret".to_owned().into()),
            ..Agent::default()
        };
        let shown = format!("{agent:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn refusals_map_to_codes_reasons_and_vendor_metadata() {
        let refused = |kind| DialerError::Refused {
            kind,
            domain: "elision.com",
            vendor_code: "CODE".into(),
            message: "msg".into(),
        };
        let cases = [
            (Refusal::AgentExists, Code::AlreadyExists, "AGENT_ALREADY_EXISTS"),
            (Refusal::ListExists, Code::AlreadyExists, "LIST_ALREADY_EXISTS"),
            (Refusal::AgentNotFound, Code::NotFound, "AGENT_NOT_FOUND"),
            (Refusal::UserGroupNotFound, Code::FailedPrecondition, "USER_GROUP_NOT_FOUND"),
            (Refusal::CampaignNotFound, Code::FailedPrecondition, "CAMPAIGN_NOT_FOUND"),
            (Refusal::AuthFailed, Code::FailedPrecondition, "VENDOR_AUTH_FAILED"),
            (Refusal::PermissionDenied, Code::FailedPrecondition, "VENDOR_PERMISSION_DENIED"),
            (Refusal::InvalidField("agent.email"), Code::InvalidArgument, "INVALID_FIELD"),
            (Refusal::Other, Code::FailedPrecondition, "VENDOR_REJECTED"),
        ];
        for (kind, code, reason) in cases {
            let err = ApiError::from(refused(kind));
            assert_eq!((err.code, err.reason.as_ref()), (code, reason), "{kind:?}");
            assert_eq!(err.domain, "elision.com");
            assert_eq!(err.metadata["vendor_code"], "CODE");
            assert_eq!(err.metadata["vendor_message"], "msg");
        }
        assert_eq!(ApiError::from(refused(Refusal::InvalidField("agent.email"))).fields(), ["agent.email"]);
    }

    #[test]
    fn an_unavailable_dialer_is_unavailable_with_retry_info() {
        let err = ApiError::from(DialerError::Unavailable {
            reason: "VENDOR_TIMEOUT",
            domain: "elision.com",
            message: "no answer in 30 s".into(),
            delivery: Delivery::Unknown,
        });
        assert_eq!(err.code, Code::Unavailable);
        assert_eq!(err.reason, "VENDOR_TIMEOUT");
        assert_eq!(err.retry_after, Some(RETRY_AFTER));
    }
}
