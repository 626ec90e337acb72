//! A simulator of Elision's dialer API: a real HTTP server on a loopback port, following the
//! dialer document (and VICIdial's non-agent API it derives from), keeping state, counting
//! calls per function and injecting faults.
//!
//! - One endpoint ([`PATH`]); parameters from the query string or a form body (the query string
//!   wins, as in VICIdial's PHP).
//! - Users with levels, groups and permissions, the API user included; the 10-failure login
//!   lockout (15 minutes); user groups, campaigns, lists and leads.
//! - Every error the document lists, in its style: text lines for add_user and update_user,
//!   JSON for add_list, active_lists and add_multi_lead. A refused login is VICIdial's text
//!   line whatever the function.
//! - Faults are planned per function name; add_multi_lead's key also names the phone of the
//!   batch's first lead (`add_multi_lead 5550100`), so one batch of an export can be failed.
//!   [`ElisionSim::faults`] strike before the call runs (a proxy refusing it, a dialer that is
//!   down); [`ElisionSim::faults_after`] strike after it ran and changed the state (PHP failing
//!   with a 500 after a partial insert, a proxy answering 504 for a script that ran on).
//!
//! [`ElisionSim::start`] seeds the demo data the README examples use: API user `api` / `1234`
//! (level 9, every permission), user groups ADMIN and AGENTS, campaigns TESTCAMP, TESTING,
//! NIKHIL and SALES, and a few lists, some with dashes in their names.

mod functions;

use crate::registry::provider::{DemoSim, RunningSim};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{Method, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::{Value, json};

use super::wire::{self, MAX_BODY_BYTES, MAX_LEADS_PER_CALL};
use crate::sim::{Calls, Faults, SimServer};

/// The API script's path; [`ElisionSim::url`] is the full endpoint.
pub const PATH: &str = "/dialer/elision_api.php";
/// Failed logins before a user is locked out.
pub const LOCKOUT_AFTER: u32 = 10;
/// How long a lockout lasts.
pub const LOCKOUT_FOR: Duration = Duration::from_secs(15 * 60);

/// What a user may do through the API (VICIdial's "modify users", "modify lists", "modify leads").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    pub modify_users: bool,
    pub modify_lists: bool,
    pub modify_leads: bool,
}

impl Permissions {
    pub const ALL: Permissions = Permissions { modify_users: true, modify_lists: true, modify_leads: true };
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

/// A lead in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLead {
    pub lead_id: u64,
    pub list_id: String,
    pub phone_number: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub city: String,
    pub postal_code: String,
    pub vendor_lead_code: String,
}

#[derive(Debug, Default)]
struct Login {
    failures: u32,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct SimState {
    users: BTreeMap<String, SimUser>,
    logins: HashMap<String, Login>,
    groups: BTreeSet<String>,
    campaigns: BTreeSet<String>,
    lists: BTreeMap<String, SimList>,
    leads: Vec<SimLead>,
    next_lead_id: u64,
    /// Admin errors in stock VICIdial's `: |` form rather than the seed's ` - `.
    stock_error_lines: bool,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<SimState>>,
    faults: Faults,
    /// Faults answered in place of the answer of a call that has run.
    faults_after: Faults,
    calls: Calls,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, SimState> {
        // A panic in a handler cannot leave the state half-written in a way that matters to a test.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running Elision simulator. Stops when dropped.
pub struct ElisionSim {
    server: SimServer,
    shared: Shared,
}

impl std::fmt::Debug for ElisionSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElisionSim").field("url", &self.url()).finish_non_exhaustive()
    }
}

impl ElisionSim {
    /// The API endpoint, `http://127.0.0.1:PORT/dialer/elision_api.php`: a tenant's `api_url`.
    pub fn url(&self) -> String {
        format!("{}{PATH}", self.server.url())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Faults to plan, keyed by function name (`add_multi_lead <first phone>` for batches).
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Faults that strike after the call has run: the dialer's state changed, and the answer
    /// that says so is replaced by the fault. Same keys as [`ElisionSim::faults`].
    pub fn faults_after(&self) -> &Faults {
        &self.shared.faults_after
    }

    /// Calls received, by function name (faulted calls included).
    pub fn calls(&self) -> &Calls {
        &self.shared.calls
    }

    /// Adds or replaces an API user (or any user) with these rights.
    pub fn add_api_user(&self, user: &str, pass: &str, level: u8, permissions: Permissions) {
        self.shared.state().users.insert(user.to_owned(), api_user(user, pass, level, permissions));
    }

    pub fn set_permissions(&self, user: &str, permissions: Permissions) {
        if let Some(u) = self.shared.state().users.get_mut(user) {
            u.permissions = permissions;
        }
    }

    /// Answers admin errors (add_user, update_user) as stock VICIdial's source writes them,
    /// `ERROR: add_user USER ALREADY EXISTS: |api|1000`, instead of the Elision seed's ` - `.
    pub fn use_stock_error_lines(&self, on: bool) {
        self.shared.state().stock_error_lines = on;
    }

    pub fn set_level(&self, user: &str, level: u8) {
        if let Some(u) = self.shared.state().users.get_mut(user) {
            u.level = level;
        }
    }

    /// Adds an agent directly (as if made in the dialer's admin pages).
    pub fn add_agent(&self, user: &str, level: u8, group: &str) {
        let mut agent = api_user(user, "agentpass", level, Permissions::default());
        agent.group = group.to_owned();
        agent.full_name = format!("Agent {user}");
        self.shared.state().users.insert(user.to_owned(), agent);
    }

    pub fn add_user_group(&self, group: &str) {
        self.shared.state().groups.insert(group.to_owned());
    }

    pub fn add_campaign(&self, campaign_id: &str) {
        self.shared.state().campaigns.insert(campaign_id.to_owned());
    }

    pub fn add_list(&self, list_id: &str, name: &str, campaign_id: &str, active: bool) {
        let list =
            SimList { list_id: list_id.to_owned(), name: name.to_owned(), campaign_id: campaign_id.to_owned(), active };
        self.shared.state().lists.insert(list_id.to_owned(), list);
    }

    pub fn user(&self, user: &str) -> Option<SimUser> {
        self.shared.state().users.get(user).cloned()
    }

    pub fn list(&self, list_id: &str) -> Option<SimList> {
        self.shared.state().lists.get(list_id).cloned()
    }

    /// The leads of a list, in the order they were added.
    pub fn leads_in(&self, list_id: &str) -> Vec<SimLead> {
        self.shared.state().leads.iter().filter(|l| l.list_id == list_id).cloned().collect()
    }

    pub fn lead_count(&self, list_id: &str) -> usize {
        self.shared.state().leads.iter().filter(|l| l.list_id == list_id).count()
    }

    /// Whether `user` is locked out after too many failed logins.
    pub fn is_locked(&self, user: &str) -> bool {
        let state = self.shared.state();
        state.logins.get(user).and_then(|l| l.locked_until).is_some_and(|t| t > Instant::now())
    }

    /// Lifts a lockout (what the dialer's admin does, or 15 minutes).
    pub fn unlock(&self, user: &str) {
        self.shared.state().logins.remove(user);
    }
}

fn api_user(user: &str, pass: &str, level: u8, permissions: Permissions) -> SimUser {
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

fn seed_demo(s: &mut SimState) {
    s.users.insert("api".into(), api_user("api", "1234", 9, Permissions::ALL));
    s.groups.extend(["ADMIN", "AGENTS"].map(String::from));
    s.campaigns.extend(["TESTCAMP", "TESTING", "NIKHIL", "SALES"].map(String::from));
    for (id, name, campaign, active) in [
        ("20042018", "20042018-hardik", "TESTING", true),
        ("26042018", "26042018_custom-form", "NIKHIL", true),
        ("6547", "testA", "TESTING", true),
        ("3001", "Archived leads", "SALES", false),
    ] {
        s.lists
            .insert(id.into(), SimList { list_id: id.into(), name: name.into(), campaign_id: campaign.into(), active });
    }
    s.next_lead_id = 1001;
}

/// `patchbay sim elision`: the simulator on its own (API user `api` / `1234`).
pub const DEMO: DemoSim = DemoSim {
    about: "the Elision dialer API (DialerService), API user api / 1234",
    start: |addr| {
        let sim = ElisionSim::start(addr)?;
        Ok(RunningSim { url: sim.url(), guard: Box::new(sim) })
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Fault, FaultRule};

    fn sim() -> ElisionSim {
        ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap()
    }

    #[tokio::test]
    async fn the_query_string_transport_of_the_documents_examples_works() {
        let sim = sim();
        let url = format!(
            "{}?source=test&user=api&pass=1234&function=add_user&agent_user=1000&agent_pass=9999\
             &agent_user_level=1&agent_full_name=Testing+Person&agent_user_group=AGENTS",
            sim.url()
        );
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert_eq!(body.trim(), "SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|1|Testing Person|AGENTS");
        let again = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert_eq!(again.trim(), "ERROR: add_user USER ALREADY EXISTS - api|1000");
        assert_eq!(sim.calls().get("add_user"), 2);
    }

    #[tokio::test]
    async fn the_form_body_transport_works_and_the_query_string_wins() {
        let sim = sim();
        let http = reqwest::Client::new();
        let answer = http
            .post(format!("{}?function=active_lists", sim.url()))
            .form(&[("function", "add_user"), ("source", "test"), ("user", "api"), ("pass", "1234")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["message"], "lists are listed successfully");
        let data: Vec<&str> = v["data"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
        assert!(data.contains(&"TESTING-20042018-20042018-hardik"), "{data:?}");
        assert!(!data.iter().any(|d| d.contains("Archived")), "inactive lists are not listed");
    }

    #[tokio::test]
    async fn the_documented_list_errors_are_answered_in_json() {
        let sim = sim();
        let http = reqwest::Client::new();
        let call = |params: Vec<(&'static str, &'static str)>| {
            let http = http.clone();
            let url = sim.url();
            async move {
                let mut form = vec![("function", "add_list"), ("source", "test"), ("user", "api"), ("pass", "1234")];
                form.extend(params);
                let text = http.post(url).form(&form).send().await.unwrap().text().await.unwrap();
                serde_json::from_str::<Value>(&text).unwrap()
            }
        };
        let ok = call(vec![("list_id", "1101"), ("list_name", "Test API list"), ("campaign_id", "TESTCAMP")]).await;
        assert_eq!(ok["message"], "1101 list created");
        let dup = call(vec![("list_id", "1101"), ("list_name", "Test API list"), ("campaign_id", "TESTCAMP")]).await;
        assert_eq!(dup["message"], "1101 list already exist");
        let camp = call(vec![("list_id", "1102"), ("list_name", "Test API list"), ("campaign_id", "NOPE")]).await;
        assert_eq!(camp["message"], "NOPE campaign does not exist");
        let missing = call(vec![("list_name", "Test API list"), ("campaign_id", "TESTCAMP")]).await;
        assert_eq!(missing["message"], "Please send list id , campaign id and list name");
        assert!(!sim.list("1101").unwrap().active, "active defaults to N");
    }

    #[tokio::test]
    async fn a_fault_after_the_call_replaces_the_answer_of_a_call_that_ran() {
        let sim = sim();
        sim.faults_after().plan(FaultRule::new(Fault::Status(500)).matching("add_user").times(1));
        let url = format!(
            "{}?source=test&user=api&pass=1234&function=add_user&agent_user=1000&agent_pass=9999\
             &agent_user_level=1&agent_full_name=Testing+Person&agent_user_group=AGENTS",
            sim.url()
        );
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 500);
        assert_eq!(sim.user("1000").unwrap().full_name, "Testing Person", "the call ran before the fault");
    }

    #[tokio::test]
    async fn a_body_above_the_limit_is_refused_by_the_web_server() {
        let sim = sim();
        let big = "x".repeat(MAX_BODY_BYTES + 1);
        let resp = reqwest::Client::new()
            .post(sim.url())
            .form(&[("function", "add_multi_lead"), ("multi_leads", big.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
    }

    #[tokio::test]
    async fn an_update_applies_only_the_fields_sent() {
        let sim = sim();
        sim.add_agent("2000", 1, "AGENTS");
        let body = reqwest::get(format!(
            "{}?source=test&user=api&pass=1234&function=update_user&agent_user=2000&active=N",
            sim.url()
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        assert_eq!(body.trim(), "SUCCESS: update_user USER HAS BEEN UPDATED - api|2000");
        let agent = sim.user("2000").unwrap();
        assert!(!agent.active);
        assert_eq!((agent.full_name.as_str(), agent.level), ("Agent 2000", 1));
    }
}
