//! The simulator's HTTP handlers: Delacon's three calls as the API document describes them
//! (form fields, `Auth` header, RESULT answers). The state they work on is in `mod.rs`.

use super::*;

/// Every route of the simulated API, on the simulator's state.
pub(super) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/provision", post(provision))
        .route("/updatecustomer/{company_id}", post(update_customer))
        .route("/getnumbertypes/{location}", post(number_types))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), oversize))
        .with_state(state)
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
        let router = router(Arc::clone(&state));
        let router = state.faults.layer(router);
        let server = SimServer::start(router, addr)?;
        Ok(Self { server, state })
    }
}
