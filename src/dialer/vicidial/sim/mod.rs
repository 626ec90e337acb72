//! A simulator of stock VICIdial's non-agent API (`/vicidial/non_agent_api.php`, 2.14-194): a
//! real HTTP server on a loopback port, keeping state, counting calls per function and
//! injecting faults. It follows the PHP source as read in `shared/vendors/vicidial.md`; its
//! answer lines are that fact sheet's, character for character.
//!
//! - Transport ([`transport`]): GET or a POST form, the query string winning; every answer
//!   HTTP 200 `text/html` lines. Parameters are silently stripped first ([`strip`]).
//! - The login with its lockout (10 failures, 15 minutes, `functions.php` semantics), then per
//!   function the source, allowed-functions and permission checks ([`state`]).
//! - Functions: `version`, `add_user`, `update_user`, `user_details` ([`users`]),
//!   `campaigns_list`, `add_list`, `list_info`, `add_dnc_phone` ([`lists`]) and `add_lead` with
//!   its DNC and duplicate checks ([`leads`]). Any other name answers `NO FUNCTION SPECIFIED`.
//! - Faults are keyed by function name (`add_lead <phone as sent>` for add_lead).
//!   [`VicidialSim::faults`] strike before the call runs (a proxy refusing it, a dialer that is
//!   down); [`VicidialSim::faults_after`] strike after it ran and changed the state (PHP dying
//!   after the insert, a proxy answering 504 for a script that ran on).
//!
//! Not simulated: password hashing, two-factor, IP lists, `api_list_restrict`, viewable groups
//! and allowed campaigns (every API user sees everything), the hopper, custom fields, phones
//! (so update_user refuses any `phone_login` but `--BLANK--`), update_list and update_lead.
//!
//! [`VicidialSim::start`] seeds the demo data: API user `api` / `1234` (level 9, every
//! permission, group ADMIN), user groups ADMIN and AGENTS, campaigns TESTCAMP, TESTING, NIKHIL
//! and SALES, four lists, and lead ids from 100001.

mod exchange;
mod leads;
mod lists;
mod model;
mod state;
mod strip;
#[cfg(test)]
mod tests;
mod transport;
mod users;

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{Router, extract::DefaultBodyLimit, routing::any};

use crate::registry::provider::{DemoSim, RunningSim};
use crate::sim::{Calls, Faults, SimServer};
use model::api_user;
pub use model::{LOCKOUT_AFTER, LOCKOUT_WINDOW, Permissions, SimLead, SimList, SimUser};
use state::{SimState, ci, list_key};
use transport::Shared;

/// The API script's path; [`VicidialSim::url`] is the full endpoint.
pub const PATH: &str = "/vicidial/non_agent_api.php";
/// Larger bodies are refused with 413 by the web server (Apache / PHP `post_max_size`) before
/// the script runs; the API itself has no limit.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A running VICIdial simulator. Stops when dropped.
pub struct VicidialSim {
    server: SimServer,
    shared: Shared,
}

impl std::fmt::Debug for VicidialSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VicidialSim").field("url", &self.url()).finish_non_exhaustive()
    }
}

impl VicidialSim {
    /// Starts on `addr` (port 0: a free port) with the demo data, on the current Tokio runtime.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        let shared = Shared {
            state: Arc::new(Mutex::new(SimState::seeded(Instant::now()))),
            faults: Faults::new(),
            faults_after: Faults::new(),
            calls: Calls::new(),
        };
        let router = Router::new()
            .route(PATH, any(transport::handle))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(shared.clone());
        let server = SimServer::start(router, addr)?;
        Ok(Self { server, shared })
    }

    /// The API endpoint, `http://127.0.0.1:PORT/vicidial/non_agent_api.php`: a tenant's `api_url`.
    pub fn url(&self) -> String {
        format!("{}{PATH}", self.server.url())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Faults that strike before the call runs (the state stays as it was). Keyed by function
    /// name, `add_lead <phone_number as sent>` for add_lead.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Faults that strike after the call ran and changed the state: its answer is replaced by
    /// the fault. Same keys as [`VicidialSim::faults`].
    pub fn faults_after(&self) -> &Faults {
        &self.shared.faults_after
    }

    /// Calls received, by function name (faulted calls and `version` included; unknown names
    /// count as `(other)`, a missing one as `(none)`).
    pub fn calls(&self) -> &Calls {
        &self.shared.calls
    }

    /// Adds or replaces a user with these rights (group ADMIN, active).
    pub fn add_api_user(&self, user: &str, pass: &str, level: u8, permissions: Permissions) {
        self.shared.state().insert_user(api_user(user, pass, level, permissions), Some(Instant::now()));
    }

    pub fn set_permissions(&self, user: &str, permissions: Permissions) {
        self.with_user(user, |u| u.permissions = permissions);
    }

    pub fn set_level(&self, user: &str, level: u8) {
        self.with_user(user, |u| u.level = level);
    }

    pub fn set_password(&self, user: &str, pass: &str) {
        self.with_user(user, |u| u.pass = pass.to_owned());
    }

    /// Adds an agent as the admin pages would: full name `Agent <user>`, password `agentpass`.
    pub fn add_agent(&self, user: &str, level: u8, group: &str) {
        let mut agent = api_user(user, "agentpass", level, Permissions::default());
        agent.full_name = format!("Agent {user}");
        agent.group = group.to_owned();
        self.shared.state().insert_user(agent, Some(Instant::now()));
    }

    pub fn add_user_group(&self, group: &str) {
        self.shared.state().add_group(group);
    }

    pub fn add_campaign(&self, campaign_id: &str) {
        self.shared.state().add_campaign(campaign_id, &format!("Campaign {campaign_id}"));
    }

    pub fn add_list(&self, list_id: &str, name: &str, campaign_id: &str, active: bool) {
        self.shared.state().insert_list(list_id, name, campaign_id, active, "2099-12-31");
    }

    /// A lead loaded outside the API (a list upload); returns its lead id.
    pub fn add_lead(&self, list_id: &str, phone: &str) -> u64 {
        let lead = SimLead {
            lead_id: 0,
            list_id: list_key(list_id),
            phone_code: "1".to_owned(),
            phone_number: phone.to_owned(),
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            city: String::new(),
            postal_code: String::new(),
            vendor_lead_code: String::new(),
        };
        self.shared.state().push_lead(lead, String::new(), String::new())
    }

    /// The user (case-insensitive, as the dialer compares ids).
    pub fn user(&self, user: &str) -> Option<SimUser> {
        self.shared.state().users.get(&ci(user)).map(|r| r.user.clone())
    }

    pub fn list(&self, list_id: &str) -> Option<SimList> {
        self.shared.state().lists.get(&list_key(list_id)).map(|r| r.list.clone())
    }

    /// The leads of a list, in the order they were added.
    pub fn leads_in(&self, list_id: &str) -> Vec<SimLead> {
        let key = list_key(list_id);
        self.shared.state().leads.iter().filter(|l| l.lead.list_id == key).map(|l| l.lead.clone()).collect()
    }

    pub fn lead_count(&self, list_id: &str) -> usize {
        let key = list_key(list_id);
        self.shared.state().leads.iter().filter(|l| l.lead.list_id == key).count()
    }

    /// `failed_login_count` of the user (0 for an unknown one).
    pub fn failed_logins(&self, user: &str) -> u32 {
        self.shared.state().users.get(&ci(user)).map_or(0, |r| r.failed_logins)
    }

    /// Whether even the right password would now be refused with LOCK.
    pub fn is_locked(&self, user: &str) -> bool {
        self.shared.state().users.get(&ci(user)).is_some_and(|r| r.is_locked(Instant::now()))
    }

    /// Clears the failure count (what an admin's edit of the user does).
    pub fn unlock(&self, user: &str) {
        if let Some(r) = self.shared.state().user_mut(user) {
            r.failed_logins = 0;
        }
    }

    fn with_user(&self, user: &str, change: impl FnOnce(&mut SimUser)) {
        if let Some(r) = self.shared.state().user_mut(user) {
            change(&mut r.user);
        }
    }
}

/// `patchbay sim vicidial`: the simulator on its own (API user `api` / `1234`).
pub const DEMO: DemoSim = DemoSim {
    about: "stock VICIdial's non-agent API (DialerService), API user api / 1234",
    start: |addr| {
        let sim = VicidialSim::start(addr)?;
        Ok(RunningSim { url: sim.url(), guard: Box::new(sim) })
    },
};
