//! A simulator of the Alianza Cloud Voice REST API v2: a real HTTP server (axum) that follows the
//! vendor's documented behaviour closely enough to test the client against, keeps state, counts
//! calls and injects faults.
//!
//! What it serves (every path but `/v2/authorize` needs header `X-AUTH-TOKEN`):
//!
//! | call | endpoint key in [`AlianzaSim::calls`] |
//! |---|---|
//! | `POST /v2/authorize` | `authorize` (every attempt), `authorize.ok` (successful logins) |
//! | `PUT /v2/authorize/logout` | `logout` (the token is gone afterwards) |
//! | `GET /v2/partition/{p}/account/{accountNumber}?accountIdType=AccountNumber` | `account.lookup` |
//! | `GET /v2/partition/{p}/account/{id}` | `account.get` |
//! | `GET /v2/partition/{p}/account/search?q=` (substring) | `account.search` |
//! | `POST /v2/partition/{p}/account` | `account.create` |
//! | `PATCH /v2/partition/{p}/account/{id}` | `account.update` |
//! | `DELETE /v2/partition/{p}/account/{id}` | `account.delete` |
//! | `GET`/`POST /v2/partition/{p}/account/{id}/user` | `user.list` (at most 1,000 without `limitedData=true`) / `user.create` |
//! | `GET /v2/partition/{p}/account/{id}/telephonenumber` | `telephonenumber.list` |
//! | `GET`/`POST /v2/partition/{p}/account/{id}/deviceline` | `deviceline.list` / `deviceline.create` |
//! | `DELETE /v2/partition/{p}/account/{id}/deviceline/{lineId}` | `deviceline.delete` |
//! | `GET /v2/partition/{p}/callingplanproduct` | `callingplanproduct.list` |
//!
//! Tokens live for a sliding lifetime (8 hours by default, [`AlianzaSim::set_token_lifetime`]) on
//! the simulator's clock, which tests move ahead with [`AlianzaSim::advance_clock`]; an expired one
//! gets `401 {"status": 401, "messages": ["ExpiredAuthToken"], "data": {}}`.
//! Errors come in the spec's two shapes: the usual `PublicApiException`
//! `{"status", "messages", "data"}` (also a login with an unknown user, 404), and
//! `ApiSingleException` `{"code": <int>, "message"}` (a lookup with a bad `accountIdType`); and as
//! plain text where a web server would answer (malformed JSON, unknown paths). Faults ([`AlianzaSim::faults`]) are keyed `METHOD /path`, e.g.
//! `FaultRule::new(Fault::Status(500)).matching("/deviceline")`.

mod routes;

use crate::registry::provider::{DemoSim, RunningSim};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use rand::{Rng, distr::Alphanumeric};
use serde::Serialize;
use serde_json::{Value, json};

use crate::sim::{Calls, Faults, SimServer};

/// The time zones the simulated platform accepts: the spec's 15.
pub use super::wire::TIME_ZONES;

/// The spec's `Account.platformType` values.
const PLATFORM_TYPES: &[&str] = &["V2_0", "V2_1", "CPE1", "CPE2"];

/// Users a list answers without `limitedData=true`: the rest are cut off, as Alianza does.
pub const USER_LIST_CAP: usize = 1000;

const DIALING_BEHAVIORS: &[&str] = &[
    "SEVEN_DIGIT",
    "TEN_DIGIT",
    "OPEN_DIAL_PLAN",
    "DIAL_NINE_SEVEN_DIGIT",
    "DIAL_NINE_TEN_DIGIT",
    "OPEN_DIAL_PLAN_TEN_DIGIT",
];

/// The demo tenant's data (`api_url: simulator`): see [`AlianzaSim::seed_demo`].
pub mod demo {
    /// Account number of the demo's full panel: an ADVANCED account with users, lines and a plan.
    pub const ACCOUNT: &str = "100200300";
    /// Account number of a SIMPLE demo account that still has a telephone number (delete refuses).
    pub const ACCOUNT_WITH_NUMBERS: &str = "100200301";
    /// The telephone number [`ACCOUNT_WITH_NUMBERS`] holds.
    pub const ASSIGNED_NUMBER: &str = "8015550200";
    /// The inbound rate plan product the demo's account_defaults name.
    pub const RATE_PLAN: &str = "demo-rate-plan";
}

/// An account as the simulator stores and serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimAccount {
    pub id: String,
    pub partition_id: String,
    pub account_number: String,
    pub account_name: String,
    /// `SIMPLE` or `ADVANCED`.
    pub account_type: String,
    /// `ACTIVE`, `DISABLED`, `SUSPENDED`, ...
    pub status: String,
    pub platform_type: String,
    pub billing_cycle_day: u8,
    pub dialing_behavior_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_length: Option<u8>,
    pub time_zone: String,
    pub regulatory_type: String,
    pub inbound_rate_plan_product_id: String,
    pub calling_plans: Vec<SimCallingPlan>,
    /// Telephone numbers assigned to the account (DELETE refuses while there are any).
    #[serde(skip)]
    pub telephone_numbers: Vec<String>,
}

impl SimAccount {
    /// An ACTIVE SIMPLE account with sensible defaults; `id` is assigned when seeded.
    pub fn new(number: &str, name: &str) -> Self {
        Self {
            id: String::new(),
            partition_id: String::new(),
            account_number: number.into(),
            account_name: name.into(),
            account_type: "SIMPLE".into(),
            status: "ACTIVE".into(),
            platform_type: "V2_1".into(),
            billing_cycle_day: 1,
            dialing_behavior_type: "TEN_DIGIT".into(),
            extension_length: None,
            time_zone: "US/Eastern".into(),
            regulatory_type: "RESIDENTIAL".into(),
            inbound_rate_plan_product_id: String::new(),
            calling_plans: Vec::new(),
            telephone_numbers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimCallingPlan {
    pub id: String,
    /// `ACCOUNT` or `END_USER`.
    pub reference_type: String,
    /// The account's or the user's id.
    pub reference_id: String,
    pub calling_plan_product_id: String,
    /// A date-time, `2026-01-01T00:00:00Z`.
    pub start_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    pub plan_minutes: i64,
    pub seconds_remaining: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimUser {
    pub id: String,
    pub account_id: String,
    /// The spec's only required field of `EndUserV2X`.
    pub time_zone: String,
    pub first_name: String,
    pub last_name: String,
    /// `STANDARD`, `ADVANCED` or `PROFESSIONAL`.
    pub user_product_plan: String,
    pub caller_id_config: SimCallerId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// The user's own plans (`referenceType` END_USER), read-only.
    pub calling_plans: Vec<SimCallingPlan>,
}

impl SimCallingPlan {
    /// A plan of product `product` from `start_date` (a date-time); its owner is set when seeded.
    pub fn new(product: &str, start_date: &str, plan_minutes: i64, seconds_remaining: i64) -> Self {
        Self {
            id: String::new(),
            reference_type: String::new(),
            reference_id: String::new(),
            calling_plan_product_id: product.into(),
            start_date: start_date.into(),
            end_date: None,
            plan_minutes,
            seconds_remaining,
        }
    }
}

impl SimUser {
    pub fn new(first: &str, last: &str, plan: &str, caller_id_number: &str) -> Self {
        Self {
            id: String::new(),
            account_id: String::new(),
            time_zone: "US/Eastern".into(),
            first_name: first.into(),
            last_name: last.into(),
            user_product_plan: plan.into(),
            caller_id_config: SimCallerId { caller_id_number: caller_id_number.into() },
            extension: None,
            calling_plans: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimCallerId {
    pub caller_id_number: String,
}

/// A device line (`DeviceX`, with the spec's required fields: `id`, `accountId`, `partitionId`,
/// `userId`, `deviceName`, `deviceTypeId`, `faxEnabled`, `lineNumber`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimLine {
    pub id: String,
    pub account_id: String,
    pub partition_id: String,
    pub device_name: String,
    pub device_type_id: String,
    /// `null` for a line no user owns.
    pub user_id: Option<String>,
    pub fax_enabled: bool,
    pub line_number: u32,
    pub sip_username: String,
    pub sip_password: String,
    pub mac_address: String,
    pub emergency_number: String,
    /// `Line`, `SpeedDialUser`, `CallParkingSpot`, ... (the spec's `lineType`).
    pub line_type: String,
    /// What a key points at: a user id or a phone number (`null` for a `Line`).
    pub reference_id: Option<String>,
}

impl SimLine {
    pub fn new(sip_username: &str, line_number: u32, mac_address: &str) -> Self {
        Self {
            id: String::new(),
            account_id: String::new(),
            partition_id: String::new(),
            device_name: format!("Device {mac_address}"),
            device_type_id: "polycom-vvx".into(),
            user_id: None,
            fax_enabled: false,
            line_number,
            sip_username: sip_username.into(),
            sip_password: format!("pw-{sip_username}"),
            mac_address: mac_address.into(),
            emergency_number: String::new(),
            line_type: "Line".into(),
            reference_id: None,
        }
    }
}

#[derive(Debug, Clone)]
struct AccountRec {
    account: SimAccount,
    users: Vec<SimUser>,
    lines: Vec<SimLine>,
}

#[derive(Debug, Default)]
struct Partition {
    /// By vendor id.
    accounts: BTreeMap<String, AccountRec>,
    /// Account number -> vendor id.
    numbers: HashMap<String, String>,
    /// Calling-plan products: id -> name.
    products: BTreeMap<String, String>,
    rate_plans: BTreeSet<String>,
}

#[derive(Debug)]
struct TokenInfo {
    partition: String,
    last_used: Instant,
    expired: bool,
}

#[derive(Debug)]
struct Data {
    /// username -> (password, partition)
    logins: HashMap<String, (String, String)>,
    tokens: HashMap<String, TokenInfo>,
    token_lifetime: Duration,
    /// How far the simulated clock is ahead of the real one ([`AlianzaSim::advance_clock`]).
    clock_offset: Duration,
    partitions: HashMap<String, Partition>,
    /// Unique platform-wide.
    sip_usernames: HashSet<String>,
    /// MAC address (upper case) -> the vendor id of the account whose device has it. A device's
    /// lines share its MAC; another account cannot use it.
    macs: HashMap<String, String>,
    next_id: u64,
    demo_seeded: HashSet<String>,
}

impl Data {
    /// The simulated platform's clock: token lifetimes run on it.
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:06}", self.next_id)
    }

    fn partition(&mut self, p: &str) -> &mut Partition {
        self.partitions.entry(p.to_owned()).or_default()
    }

    /// Frees a removed line's SIP user name, and its MAC unless another line of the device has it.
    fn forget_line(&mut self, line: &SimLine, mac_still_used: bool) {
        self.sip_usernames.remove(&line.sip_username);
        if !mac_still_used {
            self.macs.remove(&line.mac_address.to_ascii_uppercase());
        }
    }

    fn by_number(&mut self, p: &str, number: &str) -> Option<&mut AccountRec> {
        let part = self.partitions.get_mut(p)?;
        let id = part.numbers.get(number)?;
        part.accounts.get_mut(id)
    }
}

struct Shared {
    data: Mutex<Data>,
    faults: Faults,
    calls: Calls,
}

impl Shared {
    fn data(&self) -> MutexGuard<'_, Data> {
        // A panic while holding the lock cannot leave the data half-written in a way that matters
        // to a simulator; keep serving.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running Alianza simulator.
pub struct AlianzaSim {
    server: SimServer,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AlianzaSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlianzaSim").field("url", &self.url()).finish_non_exhaustive()
    }
}

impl AlianzaSim {
    /// `http://127.0.0.1:PORT`: the tenant's `api_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Latency and planned faults, keyed `METHOD /path`.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Calls per endpoint key (see the module docs).
    pub fn calls(&self) -> &Calls {
        &self.shared.calls
    }

    /// Successful logins so far.
    pub fn logins(&self) -> u64 {
        self.shared.calls.get("authorize.ok")
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.server.stop().await;
    }

    /// Accepts `username` / `password`, for partition `partition`.
    pub fn add_login(&self, username: &str, password: &str, partition: &str) {
        let mut data = self.shared.data();
        data.logins.insert(username.to_owned(), (password.to_owned(), partition.to_owned()));
        data.partition(partition);
    }

    /// Tokens issued and neither logged out nor expired.
    pub fn live_tokens(&self) -> usize {
        self.shared.data().tokens.values().filter(|t| !t.expired).count()
    }

    /// Every token issued so far answers 401 ExpiredAuthToken from now on.
    pub fn expire_tokens(&self) {
        for token in self.shared.data().tokens.values_mut() {
            token.expired = true;
        }
    }

    /// How long a token stays valid after its last use (default 8 hours).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.data().token_lifetime = lifetime;
    }

    /// Moves the simulated platform's clock `by` ahead: every token has been idle that much
    /// longer, and expires if that passes its lifetime. Tests of the sliding lifetime use it
    /// instead of sleeping, so that a slow machine cannot change what they see.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.data().clock_offset += by;
    }

    /// Removes the account with this number and its lines, as a delete made outside patchbay
    /// would; `false` if there is none.
    pub fn remove_account(&self, partition: &str, number: &str) -> bool {
        let mut data = self.shared.data();
        let Some(part) = data.partitions.get_mut(partition) else { return false };
        let Some(id) = part.numbers.remove(number) else { return false };
        let Some(rec) = part.accounts.remove(&id) else { return false };
        for line in &rec.lines {
            data.forget_line(line, false);
        }
        true
    }

    pub fn add_calling_plan_product(&self, partition: &str, id: &str, name: &str) {
        self.shared.data().partition(partition).products.insert(id.to_owned(), name.to_owned());
    }

    /// An inbound rate plan product that account creation accepts.
    pub fn add_rate_plan(&self, partition: &str, id: &str) {
        self.shared.data().partition(partition).rate_plans.insert(id.to_owned());
    }

    /// Stores `account` (its id assigned if empty); returns the id. Replaces an account with the
    /// same number.
    pub fn seed_account(&self, partition: &str, mut account: SimAccount) -> String {
        let mut data = self.shared.data();
        if account.id.is_empty() {
            account.id = data.id("acc");
        }
        account.partition_id = partition.to_owned();
        for (i, plan) in account.calling_plans.iter_mut().enumerate() {
            if plan.id.is_empty() {
                plan.id = format!("{}-cp{i}", account.id);
            }
            plan.reference_type = "ACCOUNT".into();
            plan.reference_id = account.id.clone();
        }
        let id = account.id.clone();
        let part = data.partition(partition);
        if let Some(old) = part.numbers.insert(account.account_number.clone(), id.clone()) {
            part.accounts.remove(&old);
        }
        part.accounts.insert(id.clone(), AccountRec { account, users: Vec::new(), lines: Vec::new() });
        id
    }

    /// Adds a user to the account with this number; returns the user id.
    ///
    /// # Panics
    /// If the account does not exist (a mistake in the test's own seeding).
    pub fn add_user(&self, partition: &str, number: &str, mut user: SimUser) -> String {
        let mut data = self.shared.data();
        if user.id.is_empty() {
            user.id = data.id("usr");
        }
        let id = user.id.clone();
        let rec = data.by_number(partition, number).unwrap_or_else(|| panic!("no simulated account {number}"));
        user.account_id = rec.account.id.clone();
        for (i, plan) in user.calling_plans.iter_mut().enumerate() {
            if plan.id.is_empty() {
                plan.id = format!("{id}-cp{i}");
            }
            plan.reference_type = "END_USER".into();
            plan.reference_id = id.clone();
        }
        rec.users.push(user);
        id
    }

    /// Adds a device line to the account with this number; returns the line id.
    ///
    /// # Panics
    /// If the account does not exist.
    pub fn add_line(&self, partition: &str, number: &str, mut line: SimLine) -> String {
        let mut data = self.shared.data();
        if line.id.is_empty() {
            line.id = data.id("dl");
        }
        let id = line.id.clone();
        let sip_username = line.sip_username.clone();
        let mac = line.mac_address.to_ascii_uppercase();
        let has_username = !sip_username.is_empty();
        let rec = data.by_number(partition, number).unwrap_or_else(|| panic!("no simulated account {number}"));
        let account_id = rec.account.id.clone();
        line.account_id = account_id.clone();
        line.partition_id = partition.to_owned();
        rec.lines.push(line);
        if has_username {
            data.sip_usernames.insert(sip_username);
        }
        data.macs.insert(mac, account_id);
        id
    }

    /// Changes the line with this SIP user name; `false` if there is none.
    pub fn edit_line(&self, partition: &str, sip_username: &str, edit: impl FnOnce(&mut SimLine)) -> bool {
        let mut data = self.shared.data();
        let Some(part) = data.partitions.get_mut(partition) else { return false };
        let line = part.accounts.values_mut().flat_map(|a| a.lines.iter_mut()).find(|l| l.sip_username == sip_username);
        match line {
            Some(line) => {
                edit(line);
                true
            }
            None => false,
        }
    }

    /// Removes the line with this SIP user name; `false` if there is none.
    pub fn remove_line(&self, partition: &str, sip_username: &str) -> bool {
        let mut data = self.shared.data();
        let Some(part) = data.partitions.get_mut(partition) else { return false };
        let mut removed = None;
        for rec in part.accounts.values_mut() {
            if let Some(i) = rec.lines.iter().position(|l| l.sip_username == sip_username) {
                let line = rec.lines.remove(i);
                let mac_still_used = rec.lines.iter().any(|l| l.mac_address.eq_ignore_ascii_case(&line.mac_address));
                removed = Some((line, mac_still_used));
                break;
            }
        }
        let Some((line, mac_still_used)) = removed else { return false };
        data.forget_line(&line, mac_still_used);
        true
    }

    /// Assigns a telephone number to the account (DELETE then refuses).
    pub fn assign_number(&self, partition: &str, number: &str, telephone_number: &str) {
        let mut data = self.shared.data();
        if let Some(rec) = data.by_number(partition, number) {
            rec.account.telephone_numbers.push(telephone_number.to_owned());
        }
    }

    /// Releases every telephone number of the account.
    pub fn release_numbers(&self, partition: &str, number: &str) {
        let mut data = self.shared.data();
        if let Some(rec) = data.by_number(partition, number) {
            rec.account.telephone_numbers.clear();
        }
    }

    /// The account with this number, as stored.
    pub fn account(&self, partition: &str, number: &str) -> Option<SimAccount> {
        self.shared.data().by_number(partition, number).map(|r| r.account.clone())
    }

    /// The account's device lines, as stored.
    pub fn lines(&self, partition: &str, number: &str) -> Vec<SimLine> {
        self.shared.data().by_number(partition, number).map(|r| r.lines.clone()).unwrap_or_default()
    }

    /// Seeds the demo data into `partition`, once (later calls change nothing):
    /// [`demo::ACCOUNT`], an ADVANCED account with two users, three lines (one without a user)
    /// and a calling plan; [`demo::ACCOUNT_WITH_NUMBERS`], a SIMPLE account with one telephone
    /// number; calling-plan products; and the rate plan [`demo::RATE_PLAN`].
    pub fn seed_demo(&self, partition: &str) {
        if !self.shared.data().demo_seeded.insert(partition.to_owned()) {
            return;
        }
        // SIP user names and MACs are unique platform-wide, so they carry the partition.
        let tag: String = partition.chars().filter(char::is_ascii_alphanumeric).collect();
        let mac = |n: u8| {
            let digest = {
                use sha2::Digest;
                sha2::Sha256::new().chain_update(partition).chain_update([n]).finalize()
            };
            hex::encode_upper(&digest[..6])
        };
        self.add_rate_plan(partition, demo::RATE_PLAN);
        self.add_calling_plan_product(partition, "cp-unl-na", "Unlimited North America");
        self.add_calling_plan_product(partition, "cp-intl-300", "International 300");

        let mut account = SimAccount::new(demo::ACCOUNT, "Jane Smith Consulting");
        account.account_type = "ADVANCED".into();
        account.billing_cycle_day = 15;
        account.dialing_behavior_type = "DIAL_NINE_TEN_DIGIT".into();
        account.extension_length = Some(3);
        account.inbound_rate_plan_product_id = demo::RATE_PLAN.into();
        account.calling_plans = vec![SimCallingPlan::new("cp-unl-na", "2024-01-01T00:00:00Z", 3000, 151_200)];
        self.seed_account(partition, account);
        let mut jane = SimUser::new("Jane", "Smith", "STANDARD", "8015550100");
        jane.extension = Some("101".into());
        let jane = self.add_user(partition, demo::ACCOUNT, jane);
        let mut desk = SimUser::new("Front", "Desk", "ADVANCED", "8015550101");
        desk.extension = Some("102".into());
        let desk = self.add_user(partition, demo::ACCOUNT, desk);
        let mut l1 = SimLine::new(&format!("jsmith-{tag}"), 1, &mac(1));
        l1.user_id = Some(jane.clone());
        l1.device_name = "Jane's desk phone".into();
        l1.sip_password = "Xq7-demo-pass-1".into();
        l1.emergency_number = "8015550100".into();
        self.add_line(partition, demo::ACCOUNT, l1);
        let mut l2 = SimLine::new(&format!("frontdesk-{tag}"), 1, &mac(2));
        l2.user_id = Some(desk.clone());
        l2.device_name = "Lobby phone".into();
        l2.sip_password = "Xq7-demo-pass-2".into();
        l2.emergency_number = "8015550101".into();
        self.add_line(partition, demo::ACCOUNT, l2);
        let mut l3 = SimLine::new(&format!("fax-{tag}"), 2, &mac(2));
        l3.device_name = "Fax line".into();
        l3.sip_password = "Xq7-demo-pass-3".into();
        l3.emergency_number = "8015550109".into();
        l3.fax_enabled = true;
        self.add_line(partition, demo::ACCOUNT, l3);
        // A key, not a line: Jane's speed-dial to the front desk has no SIP registration of its
        // own, so neither the panel nor the CRM's SIP table shows it.
        let mut key = SimLine::new("", 3, &mac(1));
        key.device_name = "Speed dial: Front Desk".into();
        key.line_type = "SpeedDialUser".into();
        key.user_id = Some(jane);
        key.reference_id = Some(desk);
        self.add_line(partition, demo::ACCOUNT, key);

        let mut bakery = SimAccount::new(demo::ACCOUNT_WITH_NUMBERS, "Bob's Bakery");
        bakery.inbound_rate_plan_product_id = demo::RATE_PLAN.into();
        self.seed_account(partition, bakery);
        self.add_user(partition, demo::ACCOUNT_WITH_NUMBERS, SimUser::new("Bob", "Baker", "STANDARD", "8015550200"));
        self.assign_number(partition, demo::ACCOUNT_WITH_NUMBERS, demo::ASSIGNED_NUMBER);
    }
}

/// `patchbay sim alianza`: the simulator on its own, with the demo tenant's login
/// (`demo@isp.example` / `demo-alianza-password`, partition `demo-partition`) and demo accounts.
pub const DEMO: DemoSim = DemoSim {
    about: "the Alianza Cloud Voice API (AccountService), with the demo tenant's login (demo@isp.example / \
            demo-alianza-password, partition demo-partition) and demo accounts",
    start: |addr| {
        let sim = AlianzaSim::start(addr)?;
        sim.add_login("demo@isp.example", "demo-alianza-password", "demo-partition");
        sim.seed_demo("demo-partition");
        Ok(RunningSim { url: sim.url(), guard: Box::new(sim) })
    },
};
