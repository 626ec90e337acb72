//! What a dialer vendor must do for DialerService, in domain terms: the provider trait, its
//! types, and the one mapping of its errors to [`ApiError`].

use std::{fmt, time::Duration};

use secrecy::SecretString;
use tonic::Code;

use crate::ops::{
    ApiError,
    vendor_error::{VendorError, VendorFailure, VendorFault},
};

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
    /// Updates only: optional fields to empty at the dialer (each one is `None` above).
    pub clear: Vec<Clearable>,
}

/// An optional agent field an update can empty (which ones, each provider's `FieldRules::clear`
/// says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Clearable {
    PhoneLogin,
    PhonePassword,
    Email,
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
            .field("clear", &self.clear)
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
    /// The country code to dial the number with, 1-4 digits; empty: the dialer's default, 1.
    pub phone_code: String,
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
    /// Its phone number is already in the list, held by this lead (added by an earlier lead of
    /// the export, or before it).
    Duplicate { lead_id: String },
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
    /// Whether the vendor takes a lead's `phone_code`; if not, only the default (1) is possible
    /// and a lead asking for another is refused rather than dialled wrongly.
    pub takes_phone_code: bool,
    /// Whether a lead whose answer was lost may be sent again: the vendor's own duplicate check
    /// then either adds it or names the copy the first attempt made, so it is never added
    /// twice. Such leads are resent (`resend` of [`DialerProvider::add_leads`]) on a repeat
    /// of the export, instead of being left outcome-unknown.
    pub resend_safe: bool,
}

/// The field rules where the family's members differ (lengths as characters, inclusive), each
/// vendor's in its folder (`elision::wire::RULES`, `vicidial::wire::RULES`). The rest is shared
/// (`validate`).
#[derive(Debug, Clone)]
pub struct FieldRules {
    /// Whose rules these are, for messages: `Elision's document`, `stock VICIdial`.
    pub source: &'static str,
    pub password: (usize, usize),
    pub voicemail_id: (usize, usize),
    pub email: (usize, usize),
    pub list_name: (usize, usize),
    pub campaign_id: (usize, usize),
    /// Whether the vendor silently drops characters of text fields (names, city, email, list
    /// names) outside its sets (`vicidial_family::fields`); patchbay then refuses such values.
    pub strips_text: bool,
    /// Whether UpdateAgent can empty the agent field of this proto name at the vendor, or why not.
    pub clear: fn(&str) -> Result<Clearable, &'static str>,
}

/// What patchbay knows of a tenant's dialer (`GetDialerStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialerStatus {
    /// `None`: not probed (the provider has no probe that needs no login).
    pub reachable: Option<bool>,
    pub version: String,
    pub build: String,
    pub login: LoginState,
    /// In words: what was probed, what failed, what to do.
    pub message: String,
}

/// The tenant's API login, as the provider's calls last found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginState {
    /// No call has logged in since the client was built.
    #[default]
    Unknown,
    Working,
    /// Refused (or locked): the client sends nothing more until it is rebuilt or reset.
    Refused,
}

/// A dialer vendor. One implementation per vendor folder; the registry builds it from a
/// tenant's `triggers.dialer`.
#[tonic::async_trait]
pub trait DialerProvider: Send + Sync + 'static {
    async fn create_agent(&self, agent: &Agent) -> Result<Ack, DialerError>;
    async fn update_agent(&self, agent: &Agent) -> Result<Ack, DialerError>;
    /// Deletes agent `user`. Where the vendor has no way to, [`DialerError::Unsupported`].
    async fn delete_agent(&self, user: &str) -> Result<Ack, DialerError> {
        let _ = user;
        Err(DialerError::Unsupported { what: "deleting an agent", why: "the vendor's API has no such function" })
    }
    async fn create_list(&self, list: &DialList) -> Result<Ack, DialerError>;
    /// The dialer's active lists. `known`: the list ids patchbay has created or exported to for
    /// this tenant, for a vendor that cannot list its lists and can only look known ones up.
    /// A read: safe to retry, and the provider does.
    async fn active_lists(&self, known: &[String]) -> Result<Vec<DialList>, DialerError>;
    /// Whether list `list_id` exists and is active (an export's target is checked so).
    async fn is_list_active(&self, list_id: &str) -> Result<bool, DialerError> {
        let lists = self.active_lists(&[list_id.to_owned()]).await?;
        Ok(lists.iter().any(|l| l.list_id == list_id))
    }
    /// Adds a batch of leads to `list_id`; one outcome per lead, in order. The caller decides
    /// from the error whether a retry could add a lead twice ([`DialerError::safe_to_resend`]).
    /// `resend`: these leads were sent before without a clear answer (only where
    /// [`ExportShape::resend_safe`]), so the vendor naming an existing copy means the earlier
    /// attempt added it.
    async fn add_leads(&self, list_id: &str, leads: &[Lead], resend: bool) -> Result<Vec<LeadOutcome>, DialerError>;
    fn export_shape(&self) -> ExportShape;
    /// The bytes `lead` takes in a batch call (`None`: too big for any call).
    fn lead_wire_size(&self, lead: &Lead) -> Option<usize>;
    /// The vendor's field rules, checked before any call.
    fn field_rules(&self) -> &'static FieldRules;
    /// What patchbay knows of the dialer, probing it where that cannot count as a failed login.
    async fn status(&self) -> DialerStatus {
        DialerStatus::default()
    }
}

/// Why the dialer refused a call, in domain terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AgentExists,
    ListExists,
    AgentNotFound,
    UserGroupNotFound,
    CampaignNotFound,
    /// The dialer refused the tenant's API login (wrong user name or password).
    AuthFailed,
    /// The dialer has locked the tenant's API user after too many failed logins: even the right
    /// password is refused until the lock runs out or the dialer's admin lifts it.
    ApiUserLocked,
    /// The tenant's API user lacks a permission (or a high enough user level) for this.
    PermissionDenied,
    /// The agent's requested level is not below the API user's own: a dialer API user may only
    /// create agents below itself. The request's `agent.level` is at fault, not the tenant.
    LevelNotBelowApiUser,
    /// The agent to change is at or above the API user's own level, so the API user may not
    /// change it: the agent's level is the obstacle, not the tenant's rights or the request.
    AgentOutranksApiUser,
    /// The dialer refused a field of the request: its proto path.
    InvalidField(&'static str),
    /// The answer shows that the tenant's dialer settings point at the wrong place (a 404 on the
    /// API script, a web server refusing access): the named tenant key must be checked.
    Misconfigured(&'static str),
    /// Anything else the dialer said no to.
    Other,
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
    /// The dialer could not be used and nothing was changed: a read that kept failing after its
    /// retries, or a mutation the dialer provably did not take (no connection; an HTTP 503 or
    /// 429, which web servers and proxies answer without running the API script). Safe to retry.
    #[error("{message}")]
    Unavailable { domain: &'static str, message: String },
    /// A mutation was sent and no clear answer came back (a timeout; any other 5xx, such as a PHP
    /// 500 after a partial insert or a proxy's 502/504; an unreadable or oversized answer): it may
    /// or may not have been applied, so it is never sent again blindly.
    #[error("{message}")]
    OutcomeUnknown {
        /// The provider's registry name (`elision`).
        provider: &'static str,
        domain: &'static str,
        /// What happened, secrets removed.
        message: String,
        /// Which read (or repeat) tells whether the change was made.
        check: String,
    },
    /// The vendor has no way to do this.
    #[error("{what} is not supported by this dialer: {why}")]
    Unsupported { what: &'static str, why: &'static str },
}

impl DialerError {
    /// Whether a mutation that failed this way may be sent again without risk of applying it twice.
    pub fn safe_to_resend(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Whether the tenant's configuration must be fixed before any call can work.
    pub fn is_tenant_problem(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                kind: Refusal::AuthFailed
                    | Refusal::ApiUserLocked
                    | Refusal::PermissionDenied
                    | Refusal::Misconfigured(_),
                ..
            }
        )
    }

    /// The caller's error for a call about agent `user`: as the [`From`] mapping, naming the
    /// agent where the agent itself is the obstacle.
    pub fn for_agent(self, user: &str) -> ApiError {
        match self {
            Self::Refused { kind: Refusal::AgentOutranksApiUser, domain, vendor_code, message } => {
                ApiError::failed_precondition(
                    "AGENT_LEVEL_TOO_HIGH",
                    format!(
                        "the dialer refused to change agent {user}: its user level is not below the dialer API \
                         user's own, and an API user may only change agents below it (the dialer's admin can \
                         change this agent) [{message}]"
                    ),
                )
                .with_domain(domain)
                .with_metadata("agent", user)
                .with_metadata("vendor_code", vendor_code)
                .with_metadata("vendor_message", message)
            }
            other => other.into(),
        }
    }
}

/// How long a caller should wait before retrying a call that met an unavailable dialer.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// What callers see of a dialer error: the dialer's own refusals (an agent that exists, a
/// campaign that does not) mapped here; every failure other areas know too (credentials, a
/// misconfigured URL, an unavailable dialer, an unknown outcome) through the shared vocabulary
/// (`ops::vendor_error`), so it reads the same in every service.
impl From<DialerError> for ApiError {
    fn from(err: DialerError) -> Self {
        match err {
            DialerError::Refused { kind, domain, vendor_code, message } => {
                let text = format!("the dialer refused: {message}");
                let shared = |failure: VendorFailure, text: String| {
                    let fault =
                        VendorFault { domain, http_status: None, code: vendor_code.clone(), message: message.clone() };
                    ApiError::from(VendorError::new(failure, "", fault, text))
                };
                let base = match kind {
                    Refusal::AgentExists => ApiError::new(Code::AlreadyExists, "AGENT_ALREADY_EXISTS", text),
                    Refusal::ListExists => ApiError::new(Code::AlreadyExists, "LIST_ALREADY_EXISTS", text),
                    Refusal::AgentNotFound => ApiError::not_found("AGENT_NOT_FOUND", text),
                    Refusal::UserGroupNotFound => ApiError::failed_precondition("USER_GROUP_NOT_FOUND", text),
                    Refusal::CampaignNotFound => ApiError::failed_precondition("CAMPAIGN_NOT_FOUND", text),
                    Refusal::AuthFailed => shared(
                        VendorFailure::AuthFailed { locked_out: false },
                        format!("{text} (the tenant's dialer username or password must be fixed)"),
                    ),
                    Refusal::ApiUserLocked => shared(
                        VendorFailure::AuthFailed { locked_out: true },
                        format!(
                            "{text} (the dialer has locked the tenant's API user after too many failed logins: \
                             fix the tenant's dialer password if it is wrong, then wait for the lock to run out \
                             or ask the dialer's admin to lift it)"
                        ),
                    ),
                    Refusal::PermissionDenied => shared(
                        VendorFailure::PermissionDenied,
                        format!("{text} (the tenant's dialer API user needs more rights)"),
                    ),
                    Refusal::LevelNotBelowApiUser => {
                        let mut e = ApiError::invalid_field(
                            "agent.level",
                            format!(
                                "must be below the dialer API user's own user level (the dialer refused: {message})"
                            ),
                        );
                        e.message = text;
                        e
                    }
                    Refusal::AgentOutranksApiUser => ApiError::failed_precondition(
                        "AGENT_LEVEL_TOO_HIGH",
                        format!("{text} (the agent's user level is not below the dialer API user's own)"),
                    ),
                    Refusal::InvalidField(field) => {
                        let mut e = ApiError::invalid_field(field, format!("refused by the dialer: {message}"));
                        e.message = text;
                        e
                    }
                    Refusal::Misconfigured(key) => shared(
                        VendorFailure::Misconfigured { keys: key },
                        format!("{message} (check the tenant's {key})"),
                    ),
                    Refusal::Other => shared(VendorFailure::Rejected, text),
                };
                base.with_domain(domain)
                    .with_metadata("vendor_code", vendor_code)
                    .with_metadata("vendor_message", message)
            }
            DialerError::Unavailable { domain, message } => {
                let fault =
                    VendorFault { domain, http_status: None, code: "unavailable".into(), message: message.clone() };
                let failure = VendorFailure::Unavailable { retry_after: RETRY_AFTER };
                VendorError::new(failure, "", fault, format!("the dialer is unavailable: {message}")).into()
            }
            DialerError::Unsupported { what, why } => ApiError::new(
                Code::Unimplemented,
                "NOT_SUPPORTED_BY_PROVIDER",
                format!(
                    "{what} is not supported by this tenant's dialer provider: {why} (the README's provider table says what each provider does)"
                ),
            ),
            DialerError::OutcomeUnknown { provider, domain, message, check } => {
                let fault =
                    VendorFault { domain, http_status: None, code: "outcome_unknown".into(), message: message.clone() };
                let text =
                    format!("{message}; the change may or may not have been made and was not sent again: {check}");
                VendorError::new(VendorFailure::OutcomeUnknown, provider, fault, text).into()
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
    fn refusals_about_the_request_or_the_agent_are_not_blamed_on_the_tenant() {
        let refused = |kind| DialerError::Refused {
            kind,
            domain: "elision.com",
            vendor_code: "CODE".into(),
            message: "msg".into(),
        };
        let level = ApiError::from(refused(Refusal::LevelNotBelowApiUser));
        assert_eq!((level.code, level.fields()), (Code::InvalidArgument, vec!["agent.level"]));
        assert!(level.violations[0].description.contains("below the dialer API user's own user level"));
        let outranks = refused(Refusal::AgentOutranksApiUser).for_agent("boss");
        assert_eq!((outranks.code, outranks.reason.as_ref()), (Code::FailedPrecondition, "AGENT_LEVEL_TOO_HIGH"));
        assert!(outranks.message.contains("agent boss"), "{}", outranks.message);
        assert_eq!(outranks.metadata["agent"], "boss");
        assert!(!refused(Refusal::AgentOutranksApiUser).is_tenant_problem());
        let locked = ApiError::from(refused(Refusal::ApiUserLocked));
        assert_eq!(locked.reason, "VENDOR_AUTH_FAILED");
        assert!(locked.message.contains("locked the tenant's API user"), "{}", locked.message);
        let misconfigured = ApiError::from(refused(Refusal::Misconfigured("triggers.dialer.api_url")));
        assert_eq!(
            (misconfigured.code, misconfigured.reason.as_ref()),
            (Code::FailedPrecondition, "VENDOR_MISCONFIGURED")
        );
        assert_eq!(misconfigured.metadata["tenant_key"], "triggers.dialer.api_url");
    }

    #[test]
    fn an_unavailable_dialer_is_unavailable_with_retry_info_and_safe_to_resend() {
        let e = DialerError::Unavailable { domain: "elision.com", message: "cannot connect".into() };
        assert!(e.safe_to_resend());
        let err = ApiError::from(e);
        assert_eq!(err.code, Code::Unavailable);
        assert_eq!(err.reason, "VENDOR_UNAVAILABLE");
        assert_eq!(err.retry_after, Some(RETRY_AFTER));
    }

    #[test]
    fn an_unknown_outcome_is_unknown_without_retry_info_and_says_what_to_check() {
        let e = DialerError::OutcomeUnknown {
            provider: "elision",
            domain: "elision.com",
            message: "add_user: the dialer answered HTTP 502".into(),
            check: "send CreateAgent again".into(),
        };
        assert!(!e.safe_to_resend());
        let err = ApiError::from(e);
        assert_eq!((err.code, err.reason.as_ref()), (Code::Unknown, "VENDOR_OUTCOME_UNKNOWN"));
        assert_eq!(err.retry_after, None);
        assert_eq!(err.metadata["provider"], "elision");
        assert!(err.message.contains("HTTP 502") && err.message.contains("send CreateAgent again"), "{}", err.message);
    }
}
