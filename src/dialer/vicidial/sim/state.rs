//! The dialer's tables (users, user groups, campaigns, lists, leads, DNC numbers), the login
//! with its lockout (`functions.php` `user_authorization`), and what every function checks
//! before its own fields: the source, the API user's allowed functions and its permissions.
//! The functions themselves are in `users.rs`, `lists.rs` and `leads.rs`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Instant,
};

use super::{
    exchange::{Answer, Params},
    model::{LOCKOUT_AFTER, LOCKOUT_WINDOW, Permissions, SimLead, SimList, SimUser, api_user},
};

/// The PHP script's version and build (`$version`, `$build` at commit 739c0ce).
const VERSION: &str = "2.14-194";
const BUILD: &str = "241004-1518";
/// The server's time zone: US Eastern standard time, as in the fact sheet's examples.
const SERVER_GMT_HOURS: i32 = -5;
pub(super) const SERVER_GMT: &str = "-5.00";

/// A user row with the login columns the lockout reads.
#[derive(Debug)]
pub(super) struct UserRecord {
    pub user: SimUser,
    pub failed_logins: u32,
    /// `last_login_date`: the last good login or the last restart of the failure count; `None`
    /// is the column's default, long ago (users made by add_user). A user added through the
    /// simulator's own methods counts as having just logged in, so a fresh simulator locks it
    /// after ten failures (a real API user idle for 15 minutes needs twenty).
    pub last_login: Option<Instant>,
}

impl UserRecord {
    fn lock_window_over(&self, now: Instant) -> bool {
        self.last_login.is_none_or(|t| now.saturating_duration_since(t) > LOCKOUT_WINDOW)
    }

    pub fn is_locked(&self, now: Instant) -> bool {
        self.failed_logins >= LOCKOUT_AFTER && !self.lock_window_over(now)
    }
}

#[derive(Debug)]
pub(super) struct Campaign {
    pub id: String,
    pub name: String,
}

#[derive(Debug)]
pub(super) struct ListRecord {
    pub list: SimList,
    /// `list_changedate`, server time.
    pub changed: String,
    pub expiration: String,
}

/// A lead with the columns duplicate checks read beyond [`SimLead`]'s.
#[derive(Debug)]
pub(super) struct LeadRecord {
    pub lead: SimLead,
    pub title: String,
    pub alt_phone: String,
}

/// The logged-in API user: its name as sent (stripped; lines echo it) and its row.
#[derive(Debug)]
pub(super) struct Caller {
    pub name: String,
    pub user: SimUser,
}

#[derive(Debug, Default)]
pub(super) struct SimState {
    /// Keyed by lower-case user id: MySQL's `_ci` collation compares ids case-insensitively.
    pub users: BTreeMap<String, UserRecord>,
    /// Lower-case group → group as created.
    pub groups: BTreeMap<String, String>,
    /// Lower-case campaign id → campaign; ordered, as MySQL returns them by primary key.
    pub campaigns: BTreeMap<String, Campaign>,
    /// Keyed by [`list_key`].
    pub lists: BTreeMap<String, ListRecord>,
    pub leads: Vec<LeadRecord>,
    /// Phone number → indexes into `leads`, for the phone duplicate checks.
    pub by_phone: HashMap<String, Vec<usize>>,
    pub next_lead_id: u64,
    /// System DNC numbers (`vicidial_dnc`).
    pub dnc: HashSet<String>,
    /// Campaign DNC numbers (`vicidial_campaign_dnc`): (lower-case campaign, phone).
    pub campaign_dnc: HashSet<(String, String)>,
    /// `system_settings.auto_user_add_value`, for `agent_user=AUTOGENERATE`.
    pub auto_user_add_value: u64,
}

/// MySQL's case-insensitive comparison key.
pub(super) fn ci(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// `list_id` is a BIGINT column: `0123` and `123` are one list.
pub(super) fn list_key(list_id: &str) -> String {
    let trimmed = list_id.trim_start_matches('0');
    if trimmed.is_empty() && !list_id.is_empty() { "0".to_owned() } else { trimmed.to_owned() }
}

/// `--BLANK--`: empties an optional field where the strip keeps `-` and letters.
pub(super) const BLANK: &str = "--BLANK--";

/// An admin function's error line: reason, then `: |`, the API user and the data.
pub(super) fn admin_error(function: &str, reason: &str, user: &str, data: &str) -> String {
    format!("ERROR: {function} {reason}: |{user}|{data}\n")
}

/// A digits-only value as a number, as PHP compares it; too long for u64 is "very large".
pub(super) fn number(digits: &str) -> u64 {
    digits.parse().unwrap_or(u64::MAX)
}

/// The output delimiter of the report-like functions (`stage`: csv, tab, pipe; default pipe).
pub(super) fn delimiter(stage: &str) -> &'static str {
    match stage {
        "csv" => ",",
        "tab" => "\t",
        _ => "|",
    }
}

/// The server's wall-clock time, `2024-11-12 10:00:00`.
pub(super) fn server_time() -> String {
    server_now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn server_now() -> chrono::DateTime<chrono::FixedOffset> {
    let offset = chrono::FixedOffset::east_opt(SERVER_GMT_HOURS * 3600).unwrap_or(chrono::Offset::fix(&chrono::Utc));
    chrono::Utc::now().with_timezone(&offset)
}

fn version_line() -> String {
    let now = server_now();
    format!(
        "VERSION: {VERSION}|BUILD: {BUILD}|DATE: {}|EPOCH: {}|DST: 0|TZ: {SERVER_GMT}|TZNOW: {SERVER_GMT}|\n",
        now.format("%Y-%m-%d %H:%M:%S"),
        now.timestamp()
    )
}

/// The functions this simulator implements; any other name answers NO FUNCTION SPECIFIED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Function {
    AddUser,
    UpdateUser,
    UserDetails,
    CampaignsList,
    AddList,
    ListInfo,
    AddLead,
    AddDncPhone,
}

impl Function {
    const ALL: [Function; 8] = [
        Function::AddUser,
        Function::UpdateUser,
        Function::UserDetails,
        Function::CampaignsList,
        Function::AddList,
        Function::ListInfo,
        Function::AddLead,
        Function::AddDncPhone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::AddUser => "add_user",
            Function::UpdateUser => "update_user",
            Function::UserDetails => "user_details",
            Function::CampaignsList => "campaigns_list",
            Function::AddList => "add_list",
            Function::ListInfo => "list_info",
            Function::AddLead => "add_lead",
            Function::AddDncPhone => "add_dnc_phone",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The permission query of the function (the `SELECT count(*) ... where user=...` each one
    /// runs after the source and allowed-functions checks).
    fn permitted(self, u: &SimUser) -> bool {
        let p = &u.permissions;
        let api8 = p.agent_api_access && u.level >= 8;
        match self {
            Function::AddUser | Function::UpdateUser => api8 && p.modify_users,
            Function::UserDetails => p.agent_api_access && u.level >= 7 && p.view_reports,
            Function::CampaignsList => api8 && p.view_reports,
            Function::AddList | Function::ListInfo => api8 && p.modify_lists,
            Function::AddLead => api8 && (1..=4).contains(&p.modify_leads),
            // The only one that does not look at vdc_agent_api_access.
            Function::AddDncPhone => u.level >= 8 && p.modify_lists,
        }
    }

    /// The refusal line when [`Function::permitted`] fails; some end with a `|`, some do not.
    fn permission_error(self, user: &str) -> String {
        let (reason, tail) = match self {
            Function::AddUser => ("USER DOES NOT HAVE PERMISSION TO ADD USERS", ""),
            Function::UpdateUser => ("USER DOES NOT HAVE PERMISSION TO UPDATE USERS", ""),
            Function::UserDetails => ("USER DOES NOT HAVE PERMISSION TO GET USER DETAILS", "|"),
            Function::CampaignsList => ("USER DOES NOT HAVE PERMISSION TO GET CAMPAIGN INFO", "|"),
            Function::AddList => ("USER DOES NOT HAVE PERMISSION TO ADD LISTS", ""),
            Function::ListInfo => ("USER DOES NOT HAVE PERMISSION TO MODIFY LISTS", ""),
            Function::AddLead => ("USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM", "|"),
            Function::AddDncPhone => ("USER DOES NOT HAVE PERMISSION TO ADD DNC NUMBERS", ""),
        };
        format!("ERROR: {} {reason}: |{user}|0{tail}\n", self.name())
    }

    /// The checks every function makes before reading its own fields, in the script's order.
    fn admit(self, caller: &Caller, p: &Params) -> Result<(), String> {
        let source = p.get("source");
        if source.len() < 2 {
            return Err(format!("ERROR: Invalid Source - {source}\nERROR: Invalid Source: |{source}|\n"));
        }
        if !allows_function(&caller.user.permissions, self.name()) {
            return Err(format!(
                "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |{}|{}|\n",
                caller.name,
                self.name()
            ));
        }
        if !self.permitted(&caller.user) {
            return Err(self.permission_error(&caller.name));
        }
        Ok(())
    }
}

/// `api_allowed_functions` holds ` fn ` or `ALL_FUNCTIONS` (the default).
fn allows_function(p: &Permissions, function: &str) -> bool {
    match &p.allowed_functions {
        None => true,
        Some(list) => list.iter().any(|f| f == function || f == "ALL_FUNCTIONS"),
    }
}

/// `function=coffee` and its variants: the script's joke, answered before the login.
fn is_coffee(function: &str) -> bool {
    matches!(function, "coffee" | "start_coffee" | "make_coffee" | "brew_coffee")
}

impl SimState {
    pub fn seeded(now: Instant) -> Self {
        let mut s = SimState { next_lead_id: 100_001, auto_user_add_value: 1101, ..SimState::default() };
        s.insert_user(api_user("api", "1234", 9, Permissions::all()), Some(now));
        for group in ["ADMIN", "AGENTS"] {
            s.add_group(group);
        }
        for (id, name) in [
            ("TESTCAMP", "Test Campaign"),
            ("TESTING", "Testing Campaign"),
            ("NIKHIL", "Nikhil Campaign"),
            ("SALES", "Sales Campaign"),
        ] {
            s.add_campaign(id, name);
        }
        for (id, name, campaign, active) in [
            ("20042018", "20042018-hardik", "TESTING", true),
            ("26042018", "26042018_custom-form", "NIKHIL", true),
            ("6547", "testA", "TESTING", true),
            ("3001", "Archived leads", "SALES", false),
        ] {
            s.insert_list(id, name, campaign, active, "2099-12-31");
        }
        s
    }

    /// Answers one call to the script.
    pub fn call(&mut self, function: &str, p: &Params, now: Instant) -> Answer {
        if function == "version" {
            return Answer::text(version_line());
        }
        if is_coffee(function) {
            return Answer::teapot(function);
        }
        let caller = match self.login(&p.get("user"), &p.get("pass"), now) {
            Ok(caller) => caller,
            Err(line) => return Answer::text(line),
        };
        let Some(f) = Function::parse(function) else {
            return Answer::text("ERROR: NO FUNCTION SPECIFIED\n".to_owned());
        };
        if let Err(refusal) = f.admit(&caller, p) {
            return Answer::text(refusal);
        }
        Answer::text(match f {
            Function::AddUser => self.add_user(&caller, p),
            Function::UpdateUser => self.update_user(&caller, p),
            Function::UserDetails => self.user_details(&caller, p),
            Function::CampaignsList => self.campaigns_list(&caller, p),
            Function::AddList => self.add_list(&caller, p),
            Function::ListInfo => self.list_info(&caller, p),
            Function::AddLead => self.add_lead(&caller, p),
            Function::AddDncPhone => self.add_dnc_phone(&caller, p),
        })
    }

    /// `user_authorization`: the login passes when user and password match (case-insensitively),
    /// the user is active with level 7 or more, and it is not locked. A failure for an existing
    /// user counts; at ten the user is locked until 15 minutes after `last_login_date`.
    pub fn login(&mut self, user: &str, pass: &str, now: Instant) -> Result<Caller, String> {
        let bad = || format!("ERROR: Login incorrect, please try again: |{user}|{pass}|BAD|\n");
        let Some(rec) = self.users.get_mut(&ci(user)) else { return Err(bad()) };
        let good =
            rec.user.pass.eq_ignore_ascii_case(pass) && rec.user.active && rec.user.level >= 7 && !rec.is_locked(now);
        if good {
            rec.failed_logins = 0;
            rec.last_login = Some(now);
            return Ok(Caller { name: user.to_owned(), user: rec.user.clone() });
        }
        if rec.failed_logins < LOCKOUT_AFTER {
            rec.failed_logins += 1;
        } else if rec.lock_window_over(now) {
            // The window passed: the count restarts, and so does the window.
            rec.failed_logins = 1;
            rec.last_login = Some(now);
        } else {
            return Err(format!("ERROR: Too many login attempts, try again in 15 minutes: |{user}|LOCK|\n"));
        }
        Err(bad())
    }

    /// Adds or replaces a user; `last_login` is its `last_login_date`.
    pub fn insert_user(&mut self, user: SimUser, last_login: Option<Instant>) {
        self.users.insert(ci(&user.user), UserRecord { user, failed_logins: 0, last_login });
    }

    pub fn user_mut(&mut self, user: &str) -> Option<&mut UserRecord> {
        self.users.get_mut(&ci(user))
    }

    pub fn add_group(&mut self, group: &str) {
        self.groups.insert(ci(group), group.to_owned());
    }

    pub fn group_exists(&self, group: &str) -> bool {
        self.groups.contains_key(&ci(group))
    }

    pub fn add_campaign(&mut self, id: &str, name: &str) {
        self.campaigns.insert(ci(id), Campaign { id: id.to_owned(), name: name.to_owned() });
    }

    pub fn campaign_exists(&self, id: &str) -> bool {
        self.campaigns.contains_key(&ci(id))
    }

    pub fn insert_list(&mut self, list_id: &str, name: &str, campaign_id: &str, active: bool, expiration: &str) {
        let key = list_key(list_id);
        let list = SimList { list_id: key.clone(), name: name.to_owned(), campaign_id: campaign_id.to_owned(), active };
        self.lists.insert(key, ListRecord { list, changed: server_time(), expiration: expiration.to_owned() });
    }

    /// Stores a lead under the next id and returns the id.
    pub fn push_lead(&mut self, mut lead: SimLead, title: String, alt_phone: String) -> u64 {
        let id = self.next_lead_id;
        self.next_lead_id += 1;
        lead.lead_id = id;
        self.by_phone.entry(lead.phone_number.clone()).or_default().push(self.leads.len());
        self.leads.push(LeadRecord { lead, title, alt_phone });
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state() -> (SimState, Instant) {
        let now = Instant::now();
        (SimState::seeded(now), now)
    }

    #[test]
    fn the_eleventh_attempt_after_ten_failures_is_locked_even_with_the_right_password() {
        let (mut s, now) = state();
        for _ in 0..LOCKOUT_AFTER {
            assert!(s.login("api", "wrong", now).unwrap_err().contains("|BAD|"));
        }
        assert_eq!(s.users["api"].failed_logins, 10);
        let locked = s.login("api", "1234", now).unwrap_err();
        assert_eq!(locked, "ERROR: Too many login attempts, try again in 15 minutes: |api|LOCK|\n");
        assert_eq!(s.users["api"].failed_logins, 10, "attempts while locked do not count");
    }

    #[test]
    fn after_the_window_the_right_password_works_at_any_count() {
        let (mut s, now) = state();
        for _ in 0..12 {
            let _ = s.login("api", "wrong", now);
        }
        let later = now + LOCKOUT_WINDOW + Duration::from_secs(1);
        assert!(s.login("api", "1234", later).is_ok());
        assert_eq!(s.users["api"].failed_logins, 0);
    }

    #[test]
    fn a_failure_after_the_window_restarts_the_count_and_the_window() {
        let (mut s, now) = state();
        for _ in 0..10 {
            let _ = s.login("api", "wrong", now);
        }
        let later = now + LOCKOUT_WINDOW + Duration::from_secs(1);
        assert!(s.login("api", "wrong", later).unwrap_err().contains("|BAD|"));
        assert_eq!(s.users["api"].failed_logins, 1);
        for _ in 0..9 {
            let _ = s.login("api", "wrong", later);
        }
        assert!(s.login("api", "1234", later).unwrap_err().contains("|LOCK|"));
    }

    #[test]
    fn low_level_or_inactive_users_fail_and_count() {
        let (mut s, now) = state();
        let mut agent = api_user("agent", "pw", 6, Permissions::all());
        s.insert_user(agent.clone(), Some(now));
        assert!(s.login("agent", "pw", now).is_err());
        agent.level = 8;
        agent.active = false;
        s.insert_user(agent, Some(now));
        assert!(s.login("AGENT", "PW", now).is_err());
        assert_eq!(s.users["agent"].failed_logins, 1);
    }

    #[test]
    fn unknown_users_are_not_counted_or_stored() {
        let (mut s, now) = state();
        let _ = s.login("ghost", "x", now);
        assert!(!s.users.contains_key("ghost"));
    }

    #[test]
    fn list_ids_are_numbers() {
        assert_eq!(list_key("0123"), "123");
        assert_eq!(list_key("000"), "0");
        assert_eq!(list_key(""), "");
    }
}
