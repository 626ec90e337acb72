//! The account area's contract with its vendors, and the domain types both sides speak.
//!
//! A provider (Alianza first) implements [`AccountProvider`]; everything that knows its wire
//! format stays in its folder. grpc.rs turns these types into the public proto types and
//! [`ProviderError`] into the caller-facing [`ApiError`].

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use tonic::Code;

use crate::ops::{
    ApiError,
    vendor_error::{VendorError, VendorFailure},
};

/// An account's status at the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountState {
    Active,
    Disabled,
    Suspended,
    Pending,
    DeletePending,
    Deleted,
    /// A status this build does not know.
    Unknown,
}

/// The two statuses a caller can ask for (the others are the vendor's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
pub enum DesiredStatus {
    #[serde(rename = "ACTIVE")]
    Active,
    #[serde(rename = "DISABLED")]
    Disabled,
}

impl DesiredStatus {
    /// `ACTIVE` / `DISABLED`, as stored and as the vendors spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Self::Active),
            "DISABLED" => Some(Self::Disabled),
            _ => None,
        }
    }

    pub fn state(self) -> AccountState {
        match self {
            Self::Active => AccountState::Active,
            Self::Disabled => AccountState::Disabled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountType {
    /// One number, one user, one device.
    Simple,
    /// Several numbers, users and devices, with extension dialling.
    Advanced,
}

/// How an account's phones dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DialingBehavior {
    SevenDigit,
    TenDigit,
    OpenDialPlan,
    /// ADVANCED only; asks for extension-to-extension dialling, so needs an extension length.
    DialNineSevenDigit,
    /// ADVANCED only; asks for extension-to-extension dialling, so needs an extension length.
    DialNineTenDigit,
    OpenDialPlanTenDigit,
}

impl DialingBehavior {
    /// The DIAL_NINE behaviours: ADVANCED accounts only, with an extension length.
    pub fn is_dial_nine(self) -> bool {
        matches!(self, Self::DialNineSevenDigit | Self::DialNineTenDigit)
    }

    /// `TEN_DIGIT`, as YAML and the vendors spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SevenDigit => "SEVEN_DIGIT",
            Self::TenDigit => "TEN_DIGIT",
            Self::OpenDialPlan => "OPEN_DIAL_PLAN",
            Self::DialNineSevenDigit => "DIAL_NINE_SEVEN_DIGIT",
            Self::DialNineTenDigit => "DIAL_NINE_TEN_DIGIT",
            Self::OpenDialPlanTenDigit => "OPEN_DIAL_PLAN_TEN_DIGIT",
        }
    }
}

/// An account as the status panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    pub name: String,
    pub state: AccountState,
    pub account_type: Option<AccountType>,
    pub platform_type: String,
    pub billing_cycle_day: i32,
    pub calling_plans: Vec<CallingPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingPlan {
    pub name: String,
    /// When the plan starts; `None` when the vendor gives no readable date.
    pub start_date: Option<DateTime<Utc>>,
    pub plan_minutes: i64,
    pub seconds_remaining: i64,
    /// The user the plan belongs to ("First Last"); empty for the account's own plans.
    pub user: String,
}

/// A SIP line (a device line at the vendor), with the values the CRM's custom table needs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SipLine {
    pub line_number: String,
    /// The match key of the CRM's SIP table: unique platform-wide.
    pub sip_username: String,
    pub sip_password: String,
    pub display_name: String,
    pub emergency_number: String,
    pub mac_address: String,
    pub dial_number: String,
}

impl fmt::Debug for SipLine {
    // The SIP password never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipLine")
            .field("line_number", &self.line_number)
            .field("sip_username", &self.sip_username)
            .field("sip_password", &"<redacted>")
            .field("display_name", &self.display_name)
            .field("dial_number", &self.dial_number)
            .finish_non_exhaustive()
    }
}

/// The whole status panel of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPanel {
    pub account: Account,
    /// Distinct product plans of the account's users, in the order first seen.
    pub product_plans: Vec<String>,
    pub sip_lines: Vec<SipLine>,
}

/// A validated account to create. What the CRM cannot say (time zone, regulatory type, rate
/// plan) the provider takes from the tenant's `account_defaults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub number: String,
    pub name: String,
    pub account_type: AccountType,
    pub billing_cycle_day: u8,
    pub dialing_behavior: DialingBehavior,
    pub extension_length: Option<u8>,
    pub status: DesiredStatus,
}

/// What a status change found at the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Changed,
    /// The vendor already had that status: nothing was sent.
    AlreadySet,
}

/// What a vendor said, for ErrorInfo metadata (the vocabulary every area shares).
pub use crate::ops::vendor_error::VendorFault;

/// Why a vendor refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The request broke one of the vendor's rules.
    Invalid,
    /// The account number is taken.
    AlreadyExists,
    /// The vendor refused to delete the account (Alianza: a 400, while it has telephone numbers
    /// or a lifecycle event is in progress); its message says why.
    DeleteRefused,
}

/// A provider's failure.
///
/// The area's error policy, which every vendor client follows: a read that still fails after its
/// bounded retries is [`ProviderError::Unavailable`] or [`ProviderError::BadResponse`] (both
/// `UNAVAILABLE` with RetryInfo); a change the vendor provably never received is `Unavailable`
/// too; a change sent without a clear answer (timeout, 5xx, unreadable answer) is
/// [`ProviderError::OutcomeUnknown`], never retried blindly.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("{vendor} has no account with this account number")]
    NoAccount { vendor: &'static str },
    #[error("{} refused the request: {} {}", .fault.domain, .fault.code, .fault.message)]
    Rejected { kind: Rejection, fault: VendorFault },
    /// The account still has telephone numbers (read before deleting), so it cannot be deleted.
    #[error("{vendor} will not delete an account that still has telephone numbers: {}", numbers_text(.numbers))]
    NumbersAssigned { vendor: &'static str, domain: &'static str, numbers: Vec<String> },
    /// The vendor is down, slow or unreachable; trying again later is safe.
    #[error("{} is unavailable: {} {}", .fault.domain, .fault.code, .fault.message)]
    Unavailable { fault: VendorFault, retry_after: Duration },
    /// A read's answer was unreadable (or too large), also after its retries.
    #[error("{} answered something unreadable: {}", .fault.domain, .fault.message)]
    BadResponse { fault: VendorFault },
    /// A change was sent and no clear answer came back: it may or may not have been made.
    /// `check` says how a caller finds out.
    #[error("{} gave no clear answer to a change ({} {}); it may or may not have been made: {check}", .fault.domain, .fault.code, .fault.message)]
    OutcomeUnknown { provider: &'static str, fault: VendorFault, check: &'static str },
    #[error("{} refused the tenant's credentials: {}", .fault.domain, .fault.message)]
    Credentials { fault: VendorFault },
    #[error("{} denied the tenant's user this operation: {}", .fault.domain, .fault.message)]
    Forbidden { fault: VendorFault },
    /// The vendor's answer shows the tenant's connection settings are wrong (a 404 on a base
    /// path, an unknown partition): `keys` names the tenant keys to check.
    #[error("{} answered {} {}: check the tenant's {keys}", .fault.domain, .fault.code, .fault.message)]
    VendorMisconfigured { fault: VendorFault, keys: &'static str },
    #[error("the tenant's account trigger lacks a setting: {0}")]
    Misconfigured(String),
}

impl ProviderError {
    /// Whether trying the same thing later may succeed (status follow-up keeps retrying these).
    /// An unknown outcome counts: a status delivery looks the account up before it changes it.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::BadResponse { .. } | Self::OutcomeUnknown { .. })
    }
}

/// What callers see of a provider's failure: the area's own cases (no such account, an account
/// number taken, numbers still assigned, a missing tenant setting) mapped here; every failure
/// other areas know too through the shared vocabulary (`ops::vendor_error`).
impl From<ProviderError> for ApiError {
    fn from(err: ProviderError) -> Self {
        let message = err.to_string();
        let (failure, fault) = match err {
            ProviderError::NoAccount { vendor } => {
                return ApiError::not_found(
                    "ACCOUNT_NOT_ENABLED",
                    format!("customer not enabled in {vendor}: no account has this account number"),
                );
            }
            ProviderError::Misconfigured(_) => return ApiError::failed_precondition("TRIGGER_MISCONFIGURED", message),
            ProviderError::Rejected { kind: Rejection::AlreadyExists, fault } => {
                let message = format!("{} already has an account with this account number", fault.domain);
                return fault.annotate(ApiError::new(Code::AlreadyExists, "ACCOUNT_EXISTS", message));
            }
            ProviderError::NumbersAssigned { domain, numbers, .. } => {
                return ApiError::failed_precondition("NUMBERS_ASSIGNED", format!("{message}; release them first"))
                    .with_domain(domain)
                    .with_metadata("assigned_numbers", numbers.len().to_string());
            }
            ProviderError::Rejected { kind: Rejection::DeleteRefused, fault } => {
                let message = format!("{} refused to delete the account: {}", fault.domain, fault.message);
                return fault.annotate(ApiError::failed_precondition("DELETE_REFUSED", message));
            }
            ProviderError::Rejected { kind: Rejection::Invalid, fault } => (VendorFailure::Invalid, fault),
            ProviderError::Unavailable { fault, retry_after } => (VendorFailure::Unavailable { retry_after }, fault),
            ProviderError::BadResponse { fault } => {
                (VendorFailure::Unavailable { retry_after: Duration::from_secs(5) }, fault)
            }
            ProviderError::OutcomeUnknown { provider, fault, .. } => {
                return VendorError::new(VendorFailure::OutcomeUnknown, provider, fault, message).into();
            }
            ProviderError::Credentials { fault } => (VendorFailure::AuthFailed { locked_out: false }, fault),
            ProviderError::Forbidden { fault } => (VendorFailure::PermissionDenied, fault),
            ProviderError::VendorMisconfigured { fault, keys } => (VendorFailure::Misconfigured { keys }, fault),
        };
        VendorError::new(failure, "", fault, message).into()
    }
}

/// `a, b, c` — at most ten numbers, then how many more: a message stays short whatever the account holds.
fn numbers_text(numbers: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = numbers.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if numbers.len() > SHOWN {
        text.push_str(&format!(" and {} more", numbers.len() - SHOWN));
    }
    text
}

/// The longest a status delivery may spend on the vendor (its lookup, logins and change, with
/// their retries); the reconciler abandons it then and retries later. Providers keep their own
/// worst case inside it (the Alianza trigger caps `timeout_ms` for this).
pub const DELIVERY_BUDGET: Duration = Duration::from_secs(110);

/// A hosted-voice vendor, for one tenant (its credentials and settings are inside).
///
/// Accounts are addressed by the CRM's account number; finding the vendor's own id is the
/// provider's business. An absent account is [`ProviderError::NoAccount`].
#[tonic::async_trait]
pub trait AccountProvider: Send + Sync + 'static {
    /// The YAML `provider:` name, for audit rows.
    fn name(&self) -> &'static str;

    /// Everything the status panel shows.
    async fn account_panel(&self, number: &str) -> Result<AccountPanel, ProviderError>;

    /// The account's SIP lines, with display names and dial numbers resolved.
    async fn sip_lines(&self, number: &str) -> Result<Vec<SipLine>, ProviderError>;

    /// Creates the account; never retried blindly.
    async fn create_account(&self, account: &NewAccount) -> Result<Account, ProviderError>;

    /// Makes the vendor's status `status` (sending nothing if it already is), within
    /// [`DELIVERY_BUDGET`] whatever retries it makes.
    async fn set_status(&self, number: &str, status: DesiredStatus) -> Result<StatusChange, ProviderError>;

    /// Deletes the account.
    async fn delete_account(&self, number: &str) -> Result<(), ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(code: &str) -> VendorFault {
        VendorFault { domain: "alianza.com", http_status: Some(400), code: code.into(), message: "m".into() }
    }

    #[test]
    fn vendor_rejections_carry_the_vendor_domain_and_code() {
        let err: ApiError =
            ProviderError::Rejected { kind: Rejection::AlreadyExists, fault: fault("AccountNumberInUse") }.into();
        assert_eq!(err.code, Code::AlreadyExists);
        assert_eq!(err.domain, "alianza.com");
        assert_eq!(err.metadata["vendor_code"], "AccountNumberInUse");
        let err: ApiError =
            ProviderError::Rejected { kind: Rejection::DeleteRefused, fault: fault("LifecycleEventInProgress") }.into();
        assert_eq!((err.code, err.reason.as_ref()), (Code::FailedPrecondition, "DELETE_REFUSED"));
        assert_eq!(err.metadata["vendor_code"], "LifecycleEventInProgress");
    }

    #[test]
    fn numbers_still_assigned_are_named_in_the_message_at_most_ten_of_them() {
        let numbers: Vec<String> = (0..12).map(|i| format!("80155501{i:02}")).collect();
        let err: ApiError =
            ProviderError::NumbersAssigned { vendor: "Alianza", domain: "alianza.com", numbers: numbers[..2].to_vec() }
                .into();
        assert_eq!((err.code, err.reason.as_ref()), (Code::FailedPrecondition, "NUMBERS_ASSIGNED"));
        assert!(err.message.contains("8015550100, 8015550101; release them first"), "{}", err.message);
        assert_eq!((err.domain.as_ref(), err.metadata["assigned_numbers"].as_str()), ("alianza.com", "2"));
        let err: ApiError = ProviderError::NumbersAssigned { vendor: "Alianza", domain: "alianza.com", numbers }.into();
        assert!(err.message.contains("8015550109 and 2 more"), "{}", err.message);
        assert!(!err.message.contains("8015550110"), "{}", err.message);
    }

    #[test]
    fn outages_are_unavailable_with_retry_info() {
        let err: ApiError = ProviderError::Unavailable {
            fault: VendorFault { code: "TIMEOUT".into(), http_status: None, ..fault("") },
            retry_after: Duration::from_secs(2),
        }
        .into();
        assert_eq!((err.code, err.reason.as_ref()), (Code::Unavailable, "VENDOR_UNAVAILABLE"));
        assert_eq!(err.metadata["vendor_code"], "TIMEOUT");
        assert_eq!(err.retry_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_change_without_a_clear_answer_is_unknown_and_says_how_to_find_out() {
        let err: ApiError = ProviderError::OutcomeUnknown {
            provider: "alianza",
            fault: VendorFault { code: "HTTP_502".into(), http_status: Some(502), ..fault("") },
            check: "GetAccountStatus tells",
        }
        .into();
        assert_eq!((err.code, err.reason.as_ref()), (Code::Unknown, "VENDOR_OUTCOME_UNKNOWN"));
        assert_eq!(err.retry_after, None, "not a safe retry");
        assert_eq!((err.metadata["provider"].as_str(), err.metadata["http_status"].as_str()), ("alianza", "502"));
        assert!(err.message.contains("GetAccountStatus tells"), "{}", err.message);
    }

    #[test]
    fn a_misconfigured_vendor_names_the_tenant_keys() {
        let err: ApiError = ProviderError::VendorMisconfigured {
            fault: VendorFault { code: "HTTP_404".into(), http_status: Some(404), ..fault("") },
            keys: "triggers.account.api_url",
        }
        .into();
        assert_eq!((err.code, err.reason.as_ref()), (Code::FailedPrecondition, "VENDOR_MISCONFIGURED"));
        assert_eq!(err.metadata["tenant_key"], "triggers.account.api_url");
    }

    #[test]
    fn sip_line_debug_hides_the_password() {
        let line = SipLine { sip_password: "hunter2".into(), ..Default::default() };
        assert!(!format!("{line:?}").contains("hunter2"));
    }
}
