//! The simulator's public data: users, lists and leads as the tables hold them, and the lockout's
//! constants.

use std::time::Duration;

/// Failed logins after which a user is locked (`$LOCK_trigger_attempts`).
pub const LOCKOUT_AFTER: u32 = 10;
/// How long after `last_login_date` a lock lasts (`$LOCK_over`, 900 s).
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// A user's API rights: the `vicidial_users` columns the functions check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub modify_users: bool,
    pub delete_users: bool,
    pub modify_lists: bool,
    pub delete_lists: bool,
    /// 0-6; the lead functions need 1 to 4.
    pub modify_leads: u8,
    pub view_reports: bool,
    /// `vdc_agent_api_access`.
    pub agent_api_access: bool,
    /// `api_allowed_functions`; `None` is `ALL_FUNCTIONS`, the default.
    pub allowed_functions: Option<Vec<String>>,
}

impl Permissions {
    /// Everything allowed (`modify_leads` 1).
    pub fn all() -> Self {
        Self {
            modify_users: true,
            delete_users: true,
            modify_lists: true,
            delete_lists: true,
            modify_leads: 1,
            view_reports: true,
            agent_api_access: true,
            allowed_functions: None,
        }
    }
}

/// A dialer user: an agent, or an API user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    pub user: String,
    pub pass: String,
    pub level: u8,
    pub full_name: String,
    pub group: String,
    pub phone_login: String,
    pub phone_pass: String,
    pub voicemail_id: String,
    pub email: String,
    pub active: bool,
    pub permissions: Permissions,
}

/// A dial list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimList {
    pub list_id: String,
    pub name: String,
    pub campaign_id: String,
    pub active: bool,
}

/// A lead, with the values as stored (stripped, cut to their columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLead {
    pub lead_id: u64,
    pub list_id: String,
    pub phone_code: String,
    pub phone_number: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub city: String,
    pub postal_code: String,
    pub vendor_lead_code: String,
}

/// An active user of group ADMIN named "API user".
pub(super) fn api_user(user: &str, pass: &str, level: u8, permissions: Permissions) -> SimUser {
    SimUser {
        user: user.to_owned(),
        pass: pass.to_owned(),
        level,
        full_name: "API user".to_owned(),
        group: "ADMIN".to_owned(),
        phone_login: String::new(),
        phone_pass: String::new(),
        voicemail_id: String::new(),
        email: String::new(),
        active: true,
        permissions,
    }
}
