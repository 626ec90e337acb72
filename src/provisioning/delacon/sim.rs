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
    /// Starts an empty simulator on `addr` (port 0 picks one), on the current Tokio runtime.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| io::Error::other(e.to_string()))?;
        // Order ids differ from one run to the next, so a restarted simulator does not hand out
        // ids that a database kept from the previous run.
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let state = Arc::new(SimState {
            data: Mutex::new(Data {
                partners: HashMap::new(),
                customers: BTreeMap::new(),
                orders: BTreeMap::new(),
                plans: VecDeque::new(),
                next_order: since.saturating_sub(1_700_000_000) * 100,
                next_company: 5001,
                next_number: 100_001,
                default_wait: Duration::from_secs(3),
                callback_retry_delay: Duration::from_millis(500),
                deliveries: Vec::new(),
                number_types_failure: None,
                oversized: 0,
            }),
            faults: Faults::new(),
            calls: Calls::new(),
            http,
            stop: CancellationToken::new(),
        });
        let router = Router::new()
            .route("/provision", post(provision))
            .route("/updatecustomer/{company_id}", post(update_customer))
            .route("/getnumbertypes/{location}", post(number_types))
            .layer(middleware::from_fn_with_state(Arc::clone(&state), oversize))
            .with_state(Arc::clone(&state));
        let router = state.faults.layer(router);
        let server = SimServer::start(router, addr)?;
        Ok(Self { server, state })
    }

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

type Params = Vec<(String, String)>;

/// Pads an answer past 4 MiB when [`DelaconSim::oversize_answers`] asked for it.
async fn oversize(State(state): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let pad = {
        let mut data = state.data();
        let pad = data.oversized > 0;
        data.oversized = data.oversized.saturating_sub(1);
        pad
    };
    if !pad {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let mut bytes = axum::body::to_bytes(body, usize::MAX).await.map(|b| b.to_vec()).unwrap_or_default();
    bytes.resize(bytes.len() + (4 << 20) + 1, b' ');
    // Streamed without a length, so that a client must count what it reads.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
        bytes.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    Response::from_parts(parts, Body::from_stream(futures::stream::iter(chunks)))
}

fn invalid(detail: &str) -> Json<Answer> {
    Json(Answer::result(wire::INVALID, format!("{}{detail}", wire::VALIDATION_FAILED)))
}

fn login_failed() -> Json<Answer> {
    Json(Answer::result(wire::LOGIN_FAILED, "Invalid API key"))
}

/// The partner named by the `Auth` header, if the simulator knows it.
fn partner(state: &SimState, headers: &HeaderMap) -> Option<String> {
    let key = headers.get(wire::AUTH_HEADER)?.to_str().ok()?;
    state.data().partners.contains_key(key).then(|| key.to_owned())
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn email_ok(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
        && !domain.contains('@')
}

async fn provision(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Json<Answer> {
    state.calls.record("provision");
    let (answer, follow_up) = match form {
        Ok(Form(params)) => place_order(&state, &headers, &params),
        Err(_) => (invalid("the request is not form-encoded"), None),
    };
    if let Some((order_id, when)) = follow_up {
        match when {
            Completion::Manual => {}
            Completion::BeforeAnswer => {
                state.finish(&order_id);
                state.deliver(&order_id).await;
            }
            Completion::WithAnswer => {
                state.finish(&order_id);
                let state = Arc::clone(&state);
                tokio::spawn(async move { state.deliver(&order_id).await });
            }
            Completion::After(delay) => {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = state.stop.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {
                            if state.finish(&order_id) {
                                state.deliver(&order_id).await;
                            }
                        }
                    }
                });
            }
        }
    }
    answer
}

/// Validates and places an order; for a WAIT order, also when its callback goes.
fn place_order(state: &SimState, headers: &HeaderMap, params: &Params) -> (Json<Answer>, Option<(String, Completion)>) {
    let Some(partner) = partner(state, headers) else { return (login_failed(), None) };
    if param(params, "termsCheck") != Some("on") {
        return (invalid("termsCheck must be on (the terms must be accepted)"), None);
    }
    let count = match param(params, "numbers").and_then(|n| n.trim().parse::<u8>().ok()) {
        Some(n @ 1..=10) => n,
        _ => return (invalid("numbers must be between 1 and 10"), None),
    };
    if let Some(email) = param(params, "orderSummaryEmail").filter(|e| !e.is_empty())
        && !email_ok(email)
    {
        return (invalid("orderSummaryEmail is not a valid email address"), None);
    }
    let mut data = state.data();
    // With companyID every customer field, the features, region and number type are disregarded.
    let customer = match param(params, "companyID").filter(|c| !c.is_empty()) {
        Some(id) => match data.customers.get(id) {
            Some(c) => Ok(c.company_id.clone()),
            None => return (invalid(&format!("companyID {id} does not exist")), None),
        },
        None => match new_customer(params) {
            Ok(c) => Err(c),
            Err(detail) => return (invalid(&detail), None),
        },
    };
    let plan = data.plans.pop_front().unwrap_or_else(|| {
        if count <= 5 {
            OrderPlan::Complete
        } else {
            OrderPlan::Wait { result: CallbackResult::Ok, when: Completion::After(data.default_wait) }
        }
    });
    data.next_order += 1;
    let order_id = data.next_order.to_string();
    if let OrderPlan::Refuse(message) = &plan {
        return (Json(Answer::result(wire::FAIL, message.clone())), None);
    }
    if let OrderPlan::Fail(message) = &plan {
        data.orders.insert(
            order_id.clone(),
            SimOrder {
                order_id: order_id.clone(),
                company_id: customer.as_ref().ok().cloned().unwrap_or_default(),
                count,
                state: SimOrderState::Failed,
                numbers: Vec::new(),
                message: message.clone(),
                partner,
                pending_result: None,
            },
        );
        return (Json(Answer { order_id: Some(order_id), ..Answer::result(wire::FAIL, message.clone()) }), None);
    }
    let company_id = match customer {
        Ok(id) => id,
        Err(mut new) => {
            new.company_id = data.next_company.to_string();
            data.next_company += 1;
            let id = new.company_id.clone();
            data.customers.insert(id.clone(), new);
            id
        }
    };
    let mut order = SimOrder {
        order_id: order_id.clone(),
        company_id: company_id.clone(),
        count,
        state: SimOrderState::Waiting,
        numbers: Vec::new(),
        message: WAIT_MESSAGE.into(),
        partner,
        pending_result: None,
    };
    match plan {
        OrderPlan::Fail(_) | OrderPlan::Refuse(_) => unreachable!("answered above"),
        OrderPlan::Complete => {
            let c = data.customers.get(&company_id).cloned().expect("created or checked above");
            let numbers = data.allocate(&c.number_type, count);
            data.customers.get_mut(&company_id).expect("present").numbers.extend(numbers.iter().cloned());
            order.state = SimOrderState::Completed;
            order.numbers = numbers.clone();
            order.message = format!("Order {order_id} completed: {}", numbers.join(", "));
            data.orders.insert(order_id.clone(), order);
            let answer = Answer {
                result: Some(wire::OK.into()),
                order_id: Some(order_id),
                company_id: Some(company_id),
                numbers: Some(numbers.join(", ")),
                ..Answer::default()
            };
            (Json(answer), None)
        }
        OrderPlan::Wait { result, when } => {
            order.pending_result = Some(result);
            data.orders.insert(order_id.clone(), order);
            let wait = Json(Answer { order_id: Some(order_id.clone()), ..Answer::result(wire::WAIT, WAIT_MESSAGE) });
            (wait, Some((order_id, when)))
        }
    }
}

/// The customer a `/provision` without `companyID` creates, or what is wrong with it.
fn new_customer(params: &Params) -> Result<SimCustomer, String> {
    let text = |name: &str| param(params, name).unwrap_or_default().trim().to_owned();
    let business_name = text("BusinessName");
    if business_name.is_empty() {
        return Err("BusinessName is required".into());
    }
    let email = text("EmailAddress");
    if !email_ok(&email) {
        return Err("EmailAddress is not a valid email address".into());
    }
    let Some(region) = wire::parse_region(&text("region")) else {
        return Err("region must be one of Australia, China, Hong Kong, Japan, New Zealand, Singapore, \
                    United Kingdom, United States"
            .into());
    };
    let number_type = text("numberType");
    if !region_number_types(region).iter().any(|t| t.key == number_type) {
        return Err(format!("numberType {number_type} is not offered in {region}"));
    }
    let mut customer = SimCustomer::new(&business_name, region, &number_type);
    for name in text("features").split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let Some(feature) = wire::parse_feature(name) else {
            return Err(format!("unknown feature {name}"));
        };
        customer = customer.with_feature(SimFeature::of(feature));
    }
    customer.business_category = text("BusCat");
    customer.email = email;
    customer.termination_number = text("TerminationNumber");
    customer.business_id = text("BusID");
    Ok(customer)
}

async fn update_customer(
    State(state): State<Arc<SimState>>,
    Path(company_id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Json<Answer> {
    state.calls.record("updatecustomer");
    if partner(&state, &headers).is_none() {
        return login_failed();
    }
    let Ok(Form(params)) = form else { return invalid("the request is not form-encoded") };
    if !state.data().customers.contains_key(&company_id) {
        return Json(Answer::result(wire::FAIL, format!("Company {company_id} not found")));
    }
    if params.is_empty() {
        return invalid("no parameters to update");
    }
    if let Some((name, _)) = params.iter().find(|(k, _)| !wire::UPDATE_PARAMETERS.contains(&k.as_str())) {
        return invalid(&format!("unknown parameter {name}"));
    }
    if params.len() > 1 && params.iter().any(|(k, _)| wire::INDIVIDUAL_ONLY.contains(&k.as_str())) {
        return invalid("invalid parameters for update");
    }
    for (name, value) in &params {
        if let Err(detail) = check_update_value(name, value) {
            return invalid(&detail);
        }
    }

    let mut data = state.data();
    let customer = data.customers.get_mut(&company_id).expect("checked above");
    if let [(name, value)] = params.as_slice()
        && let Some(feature) = match name.as_str() {
            "CallRecording" => Some(SimFeature::CallRecording),
            "CallFeedbackSurevy" => Some(SimFeature::CallFeedbackSurvey),
            "IVR" => Some(SimFeature::Ivr),
            _ => None,
        }
    {
        return Json(toggle(customer, feature, value == "Y"));
    }
    for (name, value) in &params {
        match name.as_str() {
            "BusinessName" => customer.business_name = value.clone(),
            "BusCat" => customer.business_category = value.clone(),
            "EmailAddress" => customer.email = value.clone(),
            "TerminationNumber" => customer.termination_number = value.clone(),
            "BusID" => customer.business_id = value.clone(),
            _ => {}
        }
        customer.settings.insert(name.clone(), value.clone());
    }
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    Json(Answer::result(wire::OK, format!("Customer {company_id} updated: {}", names.join(", "))))
}

/// The documented answers to switching an individually-billed feature.
fn toggle(customer: &mut SimCustomer, feature: SimFeature, on: bool) -> Answer {
    let name = feature.name();
    let provisioned = customer.provisioned.contains(&feature);
    let yes_no = if provisioned { "Yes" } else { "No" };
    if on {
        if !provisioned {
            return Answer::result(wire::FAIL, format!("{name} Provisioned:No"));
        }
        customer.enabled.insert(feature);
        Answer::result(wire::OK, format!("{name} enabled for customer, {name} Provisioned:Yes"))
    } else {
        customer.enabled.remove(&feature);
        Answer::result(wire::OK, format!("{name} disabled for customer, {name} Provisioned:{yes_no}"))
    }
}

fn check_update_value(name: &str, value: &str) -> Result<(), String> {
    let ok = match name {
        "whisper" | "DNIS" | "voicemal" | "moh" | "CallRecording" | "CallFeedbackSurevy" | "IVR" => {
            value == "Y" || value == "N"
        }
        "xfertype" => matches!(value, "1" | "2" | "3"),
        "xfertime" => (1..=3).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()),
        "SMSmessage" => value.chars().count() <= 160,
        "CallTrack" => wire::CALL_TRACKS.contains(&value),
        "EmailAddress" => email_ok(value),
        "BusinessName" => !value.trim().is_empty(),
        _ => true,
    };
    let rule = match name {
        "xfertype" => "must be 1, 2 or 3",
        "xfertime" => "must be a number of at most 3 digits",
        "SMSmessage" => "must be at most 160 characters",
        "CallTrack" => "must be GooglePaid, AllPaidOnly, All, Selected or AllUtmMediumCpc",
        "EmailAddress" => "is not a valid email address",
        "BusinessName" => "must not be empty",
        _ => "must be Y or N",
    };
    if ok { Ok(()) } else { Err(format!("{name} {rule}")) }
}

async fn number_types(
    State(state): State<Arc<SimState>>,
    Path(location): Path<String>,
    headers: HeaderMap,
) -> Json<Answer> {
    state.calls.record("getnumbertypes");
    if partner(&state, &headers).is_none() {
        return login_failed();
    }
    if let Some(message) = state.data().number_types_failure.clone() {
        return Json(Answer::result(wire::FAIL, message));
    }
    match wire::parse_region(&location) {
        Some(region) => Json(Answer {
            region: Some(wire::region_code(region).to_owned()),
            number_types: Some(region_number_types(region)),
            ..Answer::default()
        }),
        None => Json(Answer::result(wire::FAIL, format!("Unknown region {location}"))),
    }
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
