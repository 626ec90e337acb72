//! A Delacon Provisioning API simulator: a real HTTP server that follows the vendor's document.
//!
//! It keeps partners (API keys, each with the callback URL Delacon would have in its portal),
//! customers and orders; answers `/provision`, `/updatecustomer/{companyID}` and
//! `/getnumbertypes/{location}` with the documented RESULTs and validation; completes WAIT
//! orders later by POSTing the callback (`OrderID`, `Result`, `Message`) to the partner's URL, up
//! to 3 tries until it sees `{"RESULT":"ACCEPTED"}`; counts calls; and injects faults.
//!
//! Which orders WAIT, and when they complete, is planned by tests and benches
//! ([`DelaconSim::plan_order`]). Without a plan an order of up to 5 numbers completes at once
//! and a larger one WAITs and completes after [`DelaconSim::set_default_wait`] (3 s).

mod routes;

use crate::registry::provider::{DemoSim, RunningSim};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Form, Json, Router,
    body::Body,
    extract::{Path, Request, State, rejection::FormRejection},
    http::HeaderMap,
    middleware::{self, Next},
    response::Response,
    routing::post,
};
use tokio_util::sync::CancellationToken;

use super::wire::{self, Answer, Callback, WireNumberType};
use crate::{
    provisioning::provider::{Feature, Region},
    sim::{Calls, Faults, SimServer},
};

/// A feature a customer may have provisioned (billed) and switched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimFeature {
    CallRecording,
    CallFeedbackSurvey,
    Ivr,
}

impl SimFeature {
    fn name(self) -> &'static str {
        match self {
            SimFeature::CallRecording => "CallRecording",
            SimFeature::CallFeedbackSurvey => "CallFeedbackSurvey",
            SimFeature::Ivr => "IVR",
        }
    }

    fn of(feature: Feature) -> Self {
        match feature {
            Feature::CallRecording => SimFeature::CallRecording,
            Feature::CallFeedbackSurvey => SimFeature::CallFeedbackSurvey,
        }
    }
}

/// A customer (company) of the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCustomer {
    /// Empty when seeding: one is allocated.
    pub company_id: String,
    pub business_name: String,
    pub business_category: String,
    pub email: String,
    pub termination_number: String,
    pub business_id: String,
    /// Orders for the company by id get numbers of this region and type.
    pub region: Region,
    pub number_type: String,
    pub numbers: Vec<String>,
    /// Features provisioned (billed) for the customer.
    pub provisioned: BTreeSet<SimFeature>,
    /// Features switched on.
    pub enabled: BTreeSet<SimFeature>,
    /// The other settings, by wire parameter name, as last updated.
    pub settings: BTreeMap<String, String>,
}

impl SimCustomer {
    pub fn new(business_name: &str, region: Region, number_type: &str) -> Self {
        Self {
            company_id: String::new(),
            business_name: business_name.to_owned(),
            business_category: String::new(),
            email: String::new(),
            termination_number: String::new(),
            business_id: String::new(),
            region,
            number_type: number_type.to_owned(),
            numbers: Vec::new(),
            provisioned: BTreeSet::new(),
            enabled: BTreeSet::new(),
            settings: BTreeMap::new(),
        }
    }

    /// Provisioned and switched on.
    pub fn with_feature(mut self, feature: SimFeature) -> Self {
        self.provisioned.insert(feature);
        self.enabled.insert(feature);
        self
    }

    /// Provisioned, switched off.
    pub fn with_provisioned(mut self, feature: SimFeature) -> Self {
        self.provisioned.insert(feature);
        self
    }
}

/// Where a simulated order stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimOrderState {
    Completed,
    Failed,
    /// Answered WAIT; completes later with this result.
    Waiting,
}

/// An order of the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOrder {
    pub order_id: String,
    pub company_id: String,
    pub count: u8,
    pub state: SimOrderState,
    pub numbers: Vec<String>,
    /// The message of its last answer or callback.
    pub message: String,
    /// Which partner (API key) placed it; the callback goes to that partner's URL.
    partner: String,
    /// A waiting order's eventual result.
    pending_result: Option<CallbackResult>,
}

/// What a WAIT order's callback will say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackResult {
    Ok,
    Fail(String),
}

/// When a WAIT order's callback is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// After this delay.
    After(Duration),
    /// When a test calls [`DelaconSim::complete`].
    Manual,
    /// Before the WAIT answer is sent: the callback reaches the partner before the order id does.
    BeforeAnswer,
    /// At the same time as the WAIT answer (a race).
    WithAnswer,
}

/// How the next order is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderPlan {
    /// `OK` at once, with the numbers.
    Complete,
    /// `FAIL` at once, with an order id and this message (a failed order).
    Fail(String),
    /// `FAIL` without an order id: the order refused outright, nothing placed.
    Refuse(String),
    /// `WAIT`, then a callback.
    Wait { result: CallbackResult, when: Completion },
}

/// One attempt at delivering a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub order_id: String,
    /// 1-3.
    pub attempt: u32,
    pub accepted: bool,
    /// `ACCEPTED`, or what came back instead (an HTTP status and body, a connection error).
    pub answer: String,
}

/// The simulator's documented order messages.
pub const FAIL_MESSAGE: &str =
    "Your order for new/additional numbers could not be processed. Our support will look to serve your order.";
pub const WAIT_MESSAGE: &str =
    "Your order for new/additional numbers is received. We will send you an email with order summary shortly.";

/// The Delacon simulator. Stops serving when dropped.
pub struct DelaconSim {
    server: SimServer,
    state: Arc<SimState>,
}

struct SimState {
    data: Mutex<Data>,
    faults: Faults,
    calls: Calls,
    http: reqwest::Client,
    stop: CancellationToken,
}

struct Data {
    /// API key -> the callback URL configured for it.
    partners: HashMap<String, Option<String>>,
    customers: BTreeMap<String, SimCustomer>,
    orders: BTreeMap<String, SimOrder>,
    plans: VecDeque<OrderPlan>,
    next_order: u64,
    next_company: u64,
    next_number: u64,
    default_wait: Duration,
    callback_retry_delay: Duration,
    deliveries: Vec<Delivery>,
    /// getnumbertypes answers FAIL with this message while set.
    number_types_failure: Option<String>,
    /// How many of the next answers are padded past 4 MiB (still valid JSON).
    oversized: u32,
}

impl DelaconSim {
    /// [`DelaconSim::start`] with the demo customers the README's examples use.
    pub fn start_demo(addr: SocketAddr) -> io::Result<Self> {
        let sim = Self::start(addr)?;
        sim.seed_demo();
        Ok(sim)
    }

    /// Seeds company `1001` (Demo Plumbing, Australia, CallRecording provisioned and on) and
    /// `1002` (Demo Sushi, Japan, CallRecording, CallFeedbackSurvey and IVR provisioned, all off).
    pub fn seed_demo(&self) {
        let mut plumbing = SimCustomer::new("Demo Plumbing Pty Ltd", Region::Australia, "1300")
            .with_feature(SimFeature::CallRecording);
        plumbing.company_id = "1001".into();
        plumbing.email = "office@demo-plumbing.example".into();
        plumbing.numbers = vec!["1300100001".into()];
        self.seed_customer(plumbing);
        let mut sushi = SimCustomer::new("Demo Sushi KK", Region::Japan, "0120")
            .with_provisioned(SimFeature::CallRecording)
            .with_provisioned(SimFeature::CallFeedbackSurvey)
            .with_provisioned(SimFeature::Ivr);
        sushi.company_id = "1002".into();
        sushi.email = "info@demo-sushi.example".into();
        self.seed_customer(sushi);
    }

    /// `http://127.0.0.1:PORT`: the `api_url` of a tenant using this simulator.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Faults, keyed `POST /provision`, `POST /updatecustomer/<id>`, `POST /getnumbertypes/<region>`.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Calls by endpoint: `provision`, `updatecustomer`, `getnumbertypes`, and `callback` (each
    /// callback attempt the simulator made).
    pub fn calls(&self) -> &Calls {
        &self.state.calls
    }

    /// Accepts `api_key` (as the `Auth` header), calling back `callback_url` when its WAIT
    /// orders complete. Replaces an earlier registration of the same key.
    pub fn add_partner(&self, api_key: &str, callback_url: Option<String>) {
        self.state.data().partners.insert(api_key.to_owned(), callback_url);
    }

    /// Stops accepting `api_key`: its calls answer LOGIN_FAILED.
    pub fn remove_partner(&self, api_key: &str) {
        self.state.data().partners.remove(api_key);
    }

    /// Adds a customer; returns its company id (allocated when `company_id` is empty).
    pub fn seed_customer(&self, mut customer: SimCustomer) -> String {
        let mut data = self.state.data();
        if customer.company_id.is_empty() {
            customer.company_id = data.next_company.to_string();
            data.next_company += 1;
        }
        let id = customer.company_id.clone();
        data.customers.insert(id.clone(), customer);
        id
    }

    pub fn customer(&self, company_id: &str) -> Option<SimCustomer> {
        self.state.data().customers.get(company_id).cloned()
    }

    pub fn order(&self, order_id: &str) -> Option<SimOrder> {
        self.state.data().orders.get(order_id).cloned()
    }

    /// Every order, by id.
    pub fn orders(&self) -> Vec<SimOrder> {
        self.state.data().orders.values().cloned().collect()
    }

    /// How the next order is answered; plans are used in the order given.
    pub fn plan_order(&self, plan: OrderPlan) {
        self.state.data().plans.push_back(plan);
    }

    pub fn clear_plans(&self) {
        self.state.data().plans.clear();
    }

    /// When unplanned WAIT orders (more than 5 numbers) complete.
    pub fn set_default_wait(&self, wait: Duration) {
        self.state.data().default_wait = wait;
    }

    /// The pause between callback attempts (default 500 ms).
    pub fn set_callback_retry_delay(&self, delay: Duration) {
        self.state.data().callback_retry_delay = delay;
    }

    /// While `Some`, getnumbertypes answers `{"RESULT":"FAIL","MESSAGE":message}` (as the
    /// document's "something went wrong").
    pub fn set_number_types_failure(&self, message: Option<&str>) {
        self.state.data().number_types_failure = message.map(str::to_owned);
    }

    /// Pads the next `n` answers with whitespace past 4 MiB: valid JSON, unreasonably large.
    pub fn oversize_answers(&self, n: u32) {
        self.state.data().oversized = n;
    }

    /// Every callback attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.data().deliveries.clone()
    }

    /// Completes a waiting order now and sends its callback (up to 3 tries). Returns whether the
    /// partner answered ACCEPTED; `None` if no such order is waiting.
    pub async fn complete(&self, order_id: &str) -> Option<bool> {
        if !self.state.finish(order_id) {
            return None;
        }
        Some(self.state.deliver(order_id).await)
    }

    /// Sends the callback of a finished order again (as Delacon does when it missed an
    /// ACCEPTED). `None` if the order is unknown or still waiting.
    pub async fn redeliver(&self, order_id: &str) -> Option<bool> {
        let done = self.order(order_id).is_some_and(|o| o.state != SimOrderState::Waiting);
        if !done {
            return None;
        }
        Some(self.state.deliver(order_id).await)
    }
}

impl Drop for DelaconSim {
    fn drop(&mut self) {
        // Pending delayed callbacks stop with the simulator.
        self.state.stop.cancel();
    }
}

impl SimState {
    fn data(&self) -> MutexGuard<'_, Data> {
        // A panic while holding the lock cannot leave the data half-changed in a way that matters
        // to a simulator; keep serving.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves a waiting order to its planned result. Returns false if it is not waiting.
    fn finish(&self, order_id: &str) -> bool {
        let mut data = self.data();
        let Some(order) = data.orders.get(order_id).cloned() else { return false };
        if order.state != SimOrderState::Waiting {
            return false;
        }
        let (state, numbers, message) = match order.pending_result.clone().unwrap_or(CallbackResult::Ok) {
            CallbackResult::Ok => {
                let customer = data.customers.get(&order.company_id).cloned();
                let number_type = customer.map_or_else(|| "1300".to_owned(), |c| c.number_type);
                let numbers = data.allocate(&number_type, order.count);
                if let Some(c) = data.customers.get_mut(&order.company_id) {
                    c.numbers.extend(numbers.iter().cloned());
                }
                let message = format!("Order {order_id} completed: {}", numbers.join(", "));
                (SimOrderState::Completed, numbers, message)
            }
            CallbackResult::Fail(message) => (SimOrderState::Failed, Vec::new(), message),
        };
        let order = data.orders.get_mut(order_id).expect("looked up above");
        order.state = state;
        order.numbers = numbers;
        order.message = message;
        order.pending_result = None;
        true
    }

    /// POSTs a finished order's callback to its partner's URL, up to 3 tries until ACCEPTED.
    async fn deliver(self: &Arc<Self>, order_id: &str) -> bool {
        let (url, callback, retry_delay) = {
            let data = self.data();
            let Some(order) = data.orders.get(order_id) else { return false };
            let result = match order.state {
                SimOrderState::Completed => wire::OK,
                SimOrderState::Failed => wire::FAIL,
                SimOrderState::Waiting => return false,
            };
            let callback =
                Callback { order_id: order_id.to_owned(), result: result.to_owned(), message: order.message.clone() };
            (data.partners.get(&order.partner).cloned().flatten(), callback, data.callback_retry_delay)
        };
        let Some(url) = url else {
            self.data().deliveries.push(Delivery {
                order_id: order_id.to_owned(),
                attempt: 0,
                accepted: false,
                answer: "no callback URL is configured for the partner".into(),
            });
            return false;
        };
        for attempt in 1..=3 {
            self.calls.record("callback");
            let (accepted, answer) = match self.http.post(&url).form(&callback).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    let parsed: Option<Answer> = serde_json::from_str(&body).ok();
                    if status.is_success() && parsed.and_then(|a| a.result).as_deref() == Some(wire::ACCEPTED) {
                        (true, wire::ACCEPTED.to_owned())
                    } else {
                        (false, format!("HTTP {}: {}", status.as_u16(), body))
                    }
                }
                // The URL holds the partner's secret: errors are kept without it.
                Err(e) => (false, e.without_url().to_string()),
            };
            self.data().deliveries.push(Delivery { order_id: order_id.to_owned(), attempt, accepted, answer });
            if accepted {
                return true;
            }
            if attempt < 3 {
                tokio::select! {
                    _ = self.stop.cancelled() => return false,
                    _ = tokio::time::sleep(retry_delay) => {}
                }
            }
        }
        false
    }
}

impl Data {
    /// `count` fresh numbers of a region's number type, e.g. `0120100001`.
    fn allocate(&mut self, number_type: &str, count: u8) -> Vec<String> {
        let width = 10usize.saturating_sub(number_type.len()).max(6);
        (0..count)
            .map(|_| {
                let n = self.next_number;
                self.next_number += 1;
                format!("{number_type}{n:0width$}")
            })
            .collect()
    }
}

/// The number types of each region: Japan's are the document's own example.
pub fn region_number_types(region: Region) -> Vec<WireNumberType> {
    let types: &[(&str, &str)] = match region {
        Region::Australia => &[
            ("1300", "1300 Local Rate Number"),
            ("1800", "1800 Toll Free Number"),
            ("02", "02 Sydney"),
            ("03", "03 Melbourne"),
            ("07", "07 Brisbane"),
            ("08", "08 Perth and Adelaide"),
        ],
        Region::China => &[("400", "400 National Number"), ("010", "010 Beijing"), ("021", "021 Shanghai")],
        Region::HongKong => &[("800", "800 Toll Free Number"), ("3", "3 Local Fixed Line")],
        Region::Japan => &[("0120", "0120 Japan Toll Free Number"), ("03", "03 Tokyo")],
        Region::NewZealand => &[("0800", "0800 Toll Free Number"), ("09", "09 Auckland"), ("04", "04 Wellington")],
        Region::Singapore => &[("1800", "1800 Toll Free Number"), ("6", "6 Local Fixed Line")],
        Region::UnitedKingdom => &[("0800", "0800 Freephone"), ("020", "020 London"), ("0161", "0161 Manchester")],
        Region::UnitedStates => {
            &[("800", "800 Toll Free Number"), ("212", "212 New York"), ("415", "415 San Francisco")]
        }
    };
    types.iter().map(|(key, desc)| WireNumberType { key: (*key).into(), desc: (*desc).into() }).collect()
}

/// `patchbay sim delacon`: the simulator on its own, with the demo tenant's API key. With no
/// callback URL configured, orders that WAIT complete silently.
pub const DEMO: DemoSim = DemoSim {
    about: "the Delacon provisioning API (ProvisioningService), API key demo-delacon-token",
    start: |addr| {
        let sim = DelaconSim::start_demo(addr)?;
        sim.add_partner("demo-delacon-token", None);
        Ok(RunningSim { url: sim.url(), guard: Box::new(sim) })
    },
};
