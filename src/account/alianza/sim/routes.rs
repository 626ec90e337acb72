//! The simulator's HTTP handlers: each route of the Alianza API it imitates, with the answer
//! shapes of the published spec. The state they work on is in `mod.rs`.

use super::*;

/// Every route of the simulated API, on the simulator's state.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    let p = "/v2/partition/{partition}";
    Router::new()
        .route("/v2/authorize", post(authorize))
        .route("/v2/authorize/logout", put(logout))
        .route(&format!("{p}/account"), post(create_account))
        .route(&format!("{p}/account/search"), get(search_accounts))
        .route(&format!("{p}/account/{{account}}"), get(get_account).patch(patch_account).delete(delete_account))
        .route(&format!("{p}/account/{{account}}/user"), get(list_users).post(create_user))
        .route(&format!("{p}/account/{{account}}/deviceline"), get(list_lines).post(create_line))
        .route(&format!("{p}/account/{{account}}/deviceline/{{line}}"), delete(delete_line))
        .route(&format!("{p}/account/{{account}}/telephonenumber"), get(list_numbers))
        .route(&format!("{p}/callingplanproduct"), get(list_products))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found").into_response() })
        .layer(axum::middleware::from_fn(conforms_to_the_spec))
        .with_state(shared)
}

/// The query parameters the spec declares for each operation the simulator serves (by method and
/// the path's last fixed segment); no other exists.
fn declared_query(method: &axum::http::Method, path: &str) -> &'static [&'static str] {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let last = segments.last().copied().unwrap_or_default();
    let before = segments.len().checked_sub(2).and_then(|i| segments.get(i)).copied().unwrap_or_default();
    match (method.as_str(), before, last) {
        ("GET", _, "search") => &["q"],
        ("GET", _, "user" | "accountuser" | "telephonenumber") => &["limitedData"],
        ("GET", _, "deviceline") => &["filterType", "filter"],
        ("GET", _, "callingplanproduct") => &["includeArchived"],
        ("GET", _, "callingplan") => &["referenceType", "referenceId"],
        ("GET", "account", _) => &["accountIdType"],
        _ => &[],
    }
}

/// Refuses what the published spec does not allow, so that every test against the simulator
/// checks patchbay's requests too: a query parameter the operation does not declare, a boolean
/// that is not `true`/`false`, a body that is not declared JSON, a missing `X-AUTH-TOKEN` is
/// caught in `auth`.
async fn conforms_to_the_spec(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let declared = declared_query(req.method(), req.uri().path());
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://sim{}", req.uri()))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    for (key, value) in &query {
        if !declared.contains(&key.as_str()) {
            return usual(StatusCode::BAD_REQUEST, &[&format!("UndeclaredQueryParameter: {key}")]);
        }
        if matches!(key.as_str(), "limitedData" | "includeArchived") && !matches!(value.as_str(), "true" | "false") {
            return usual(StatusCode::BAD_REQUEST, &[&format!("InvalidBoolean: {key}")]);
        }
    }
    let has_body = req.headers().get(axum::http::header::CONTENT_LENGTH).is_some_and(|l| l != "0");
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if has_body && !json {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json").into_response();
    }
    next.run(req).await
}

/// The usual error shape.
fn usual(status: StatusCode, messages: &[&str]) -> Response {
    (status, Json(json!({ "status": status.as_u16(), "messages": messages, "data": {} }))).into_response()
}

/// `ApiSingleException`: `{code: integer, message}` (retrieveAccount's 400).
fn coded(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "code": status.as_u16(), "message": message }))).into_response()
}

fn not_found() -> Response {
    usual(StatusCode::NOT_FOUND, &["EntityNotFound"])
}

/// A JSON object body, or the plain-text 400 the vendor gives for malformed JSON.
fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Box::new((StatusCode::BAD_REQUEST, "Malformed JSON request body").into_response())),
    }
}

fn text<'a>(body: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

type Q = Query<HashMap<String, String>>;

impl Shared {
    /// Checks the token and its partition; slides its lifetime.
    fn auth(&self, headers: &HeaderMap, partition: &str) -> Result<(), Box<Response>> {
        let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) else {
            return Err(Box::new(usual(StatusCode::UNAUTHORIZED, &["MissingAuthToken"])));
        };
        let mut data = self.data();
        let (lifetime, now) = (data.token_lifetime, data.now());
        let Some(info) = data.tokens.get_mut(token) else {
            return Err(Box::new(usual(StatusCode::UNAUTHORIZED, &["InvalidAuthToken"])));
        };
        if info.expired || now.saturating_duration_since(info.last_used) > lifetime {
            info.expired = true;
            return Err(Box::new(usual(StatusCode::UNAUTHORIZED, &["ExpiredAuthToken"])));
        }
        info.last_used = now;
        if info.partition != partition {
            return Err(Box::new(usual(StatusCode::FORBIDDEN, &["PermissionDenied"])));
        }
        Ok(())
    }
}

async fn authorize(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    s.calls.record("authorize");
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let (Some(username), Some(password)) = (text(&body, "username"), text(&body, "password")) else {
        return usual(StatusCode::BAD_REQUEST, &["UsernameAndPasswordRequired"]);
    };
    let mut data = s.data();
    let partition = match data.logins.get(username) {
        Some((expected, partition)) if expected == password => partition.clone(),
        Some(_) => return usual(StatusCode::UNAUTHORIZED, &["InvalidCredentials"]),
        // Alianza answers a user it does not know with a 404 in its own shape.
        None => return usual(StatusCode::NOT_FOUND, &["EntityNotFound"]),
    };
    let token: String = rand::rng().sample_iter(&Alphanumeric).take(22).map(char::from).collect();
    let now = data.now();
    data.tokens.insert(token.clone(), TokenInfo { partition: partition.clone(), last_used: now, expired: false });
    let max_life_hours = data.token_lifetime.as_secs().div_ceil(3600);
    drop(data);
    s.calls.record("authorize.ok");
    Json(json!({
        "authToken": token,
        "userId": format!("user-{username}"),
        "userType": "ManagementUser",
        "username": username,
        "firstName": "Simulated",
        "lastName": "Admin",
        "partitionId": partition,
        "partitionName": format!("Simulated partition {partition}"),
        "permissions": { "Account": "DELETE", "ProductCallingPlan": "READ", "PhoneNumber": "READ" },
        "mustChangePassword": false,
        "maxLifeInHours": max_life_hours,
    }))
    .into_response()
}

async fn logout(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    s.calls.record("logout");
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match s.data().tokens.remove(token) {
        Some(_) => StatusCode::OK.into_response(),
        None => usual(StatusCode::UNAUTHORIZED, &["InvalidAuthToken"]),
    }
}

async fn get_account(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let id_type = q.get("accountIdType").map_or("Id", String::as_str);
    let by_number = id_type == "AccountNumber";
    s.calls.record(if by_number { "account.lookup" } else { "account.get" });
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    if !matches!(id_type, "Id" | "AccountNumber" | "PhoneNumber" | "MacAddress") {
        return coded(StatusCode::BAD_REQUEST, &format!("Invalid accountIdType: {id_type}"));
    }
    let mut data = s.data();
    let Some(part) = data.partitions.get_mut(&partition) else { return not_found() };
    let id = if by_number { part.numbers.get(&account).cloned() } else { Some(account) };
    match id.and_then(|id| part.accounts.get(&id)) {
        Some(rec) => Json(&rec.account).into_response(),
        None => not_found(),
    }
}

async fn search_accounts(
    State(s): State<Arc<Shared>>,
    Path(partition): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    s.calls.record("account.search");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let needle = q.get("q").map(|s| s.to_lowercase()).unwrap_or_default();
    let data = s.data();
    let found: Vec<&SimAccount> = data
        .partitions
        .get(&partition)
        .map(|p| {
            p.accounts
                .values()
                .map(|r| &r.account)
                .filter(|a| {
                    a.account_number.to_lowercase().contains(&needle) || a.account_name.to_lowercase().contains(&needle)
                })
                .collect()
        })
        .unwrap_or_default();
    Json(found).into_response()
}

async fn create_account(
    State(s): State<Arc<Shared>>,
    Path(partition): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.calls.record("account.create");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut data = s.data();
    let part = data.partition(&partition);
    let mut errors: Vec<&str> = Vec::new();
    let number = text(&body, "accountNumber").unwrap_or_default().to_owned();
    if !(3..=256).contains(&number.chars().count()) {
        errors.push("InvalidAccountNumber");
    } else if part.numbers.contains_key(&number) {
        errors.push("AccountNumberInUse");
    }
    let name = text(&body, "accountName").unwrap_or_default().trim().to_owned();
    if !(3..=256).contains(&name.chars().count()) {
        errors.push("InvalidAccountName");
    }
    let account_type = text(&body, "accountType").unwrap_or_default().to_owned();
    let advanced = account_type == "ADVANCED";
    if !matches!(account_type.as_str(), "SIMPLE" | "ADVANCED") {
        errors.push("InvalidAccountType");
    }
    let billing_day = body.get("billingCycleDay").and_then(Value::as_u64).filter(|d| (1..=28).contains(d));
    if billing_day.is_none() {
        errors.push("InvalidBillingCycleDay");
    }
    let dialing = text(&body, "dialingBehaviorType").unwrap_or_default().to_owned();
    let dial_nine = dialing.starts_with("DIAL_NINE");
    if !DIALING_BEHAVIORS.contains(&dialing.as_str()) || (dial_nine && !advanced) {
        errors.push("InvalidDialingBehaviorType");
    }
    let extension_length = match body.get("extensionLength") {
        None | Some(Value::Null) => {
            if advanced && dial_nine {
                errors.push("ExtensionLengthRequired");
            }
            None
        }
        Some(v) => match v.as_u64().filter(|n| (3..=6).contains(n)) {
            Some(n) => Some(n as u8),
            None => {
                errors.push("InvalidExtensionLength");
                None
            }
        },
    };
    let time_zone = text(&body, "timeZone").unwrap_or_default().to_owned();
    if !TIME_ZONES.contains(&time_zone.as_str()) {
        errors.push("InvalidTimeZone");
    }
    let regulatory = text(&body, "regulatoryType").unwrap_or_default().to_owned();
    if !matches!(regulatory.as_str(), "RESIDENTIAL" | "COMMERCIAL" | "GOVERNMENT") {
        errors.push("InvalidRegulatoryType");
    }
    // Needed only for toll-free numbers; when given, it must exist.
    let rate_plan = text(&body, "inboundRatePlanProductId").unwrap_or_default().to_owned();
    if !rate_plan.is_empty() && !part.rate_plans.contains(&rate_plan) {
        errors.push("InvalidInboundRatePlanProductId");
    }
    let platform_type = text(&body, "platformType").unwrap_or("V2_1").to_owned();
    if !PLATFORM_TYPES.contains(&platform_type.as_str()) {
        errors.push("InvalidPlatformType");
    }
    let status = text(&body, "status").unwrap_or_default().to_owned();
    if !matches!(status.as_str(), "ACTIVE" | "DISABLED") {
        errors.push("InvalidStatus");
    }
    if !errors.is_empty() {
        return usual(StatusCode::BAD_REQUEST, &errors);
    }
    let id = data.id("acc");
    let account = SimAccount {
        id: id.clone(),
        partition_id: partition.clone(),
        account_number: number.clone(),
        account_name: name,
        account_type,
        status,
        platform_type,
        billing_cycle_day: billing_day.unwrap_or(1) as u8,
        dialing_behavior_type: dialing,
        // A SIMPLE account has no extensions: the platform ignores a length it was given.
        extension_length: if advanced { extension_length } else { None },
        time_zone,
        regulatory_type: regulatory,
        inbound_rate_plan_product_id: rate_plan,
        calling_plans: Vec::new(),
        telephone_numbers: Vec::new(),
    };
    let part = data.partition(&partition);
    part.numbers.insert(number, id.clone());
    part.accounts.insert(id, AccountRec { account: account.clone(), users: Vec::new(), lines: Vec::new() });
    Json(account).into_response()
}

async fn patch_account(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.calls.record("account.update");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut data = s.data();
    let Some(rec) = data.partitions.get_mut(&partition).and_then(|p| p.accounts.get_mut(&account)) else {
        return not_found();
    };
    let mut errors = Vec::new();
    let status = match body.get("status") {
        None => None,
        // DELETED, SUSPENDED, ... are the platform's own.
        Some(v) => match v.as_str().filter(|s| matches!(*s, "ACTIVE" | "DISABLED")) {
            Some(s) => Some(s.to_owned()),
            None => {
                errors.push("InvalidStatus");
                None
            }
        },
    };
    let name = match body.get("accountName") {
        None => None,
        Some(v) => match v.as_str().map(str::trim).filter(|s| (3..=256).contains(&s.chars().count())) {
            Some(s) => Some(s.to_owned()),
            None => {
                errors.push("InvalidAccountName");
                None
            }
        },
    };
    let billing_day = match body.get("billingCycleDay") {
        None => None,
        Some(v) => match v.as_u64().filter(|d| (1..=28).contains(d)) {
            Some(d) => Some(d as u8),
            None => {
                errors.push("InvalidBillingCycleDay");
                None
            }
        },
    };
    if body.contains_key("extensionLength") {
        errors.push("ExtensionLengthCannotChange");
    }
    if !errors.is_empty() {
        return usual(StatusCode::BAD_REQUEST, &errors);
    }
    if let Some(status) = status {
        rec.account.status = status;
    }
    if let Some(name) = name {
        rec.account.account_name = name;
    }
    if let Some(day) = billing_day {
        rec.account.billing_cycle_day = day;
    }
    Json(&rec.account).into_response()
}

async fn delete_account(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    s.calls.record("account.delete");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let mut data = s.data();
    let Some(part) = data.partitions.get_mut(&partition) else { return not_found() };
    let Some(rec) = part.accounts.get(&account) else { return not_found() };
    if !rec.account.telephone_numbers.is_empty() {
        // The spec names no code for it: a 400 in the usual shape.
        return usual(StatusCode::BAD_REQUEST, &["AccountHasTelephoneNumbers"]);
    }
    let rec = part.accounts.remove(&account).expect("checked above");
    part.numbers.remove(&rec.account.account_number);
    for line in &rec.lines {
        data.forget_line(line, false);
    }
    StatusCode::OK.into_response()
}

async fn list_users(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    s.calls.record("user.list");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let all = q.get("limitedData").is_some_and(|v| v == "true");
    let data = s.data();
    match data.partitions.get(&partition).and_then(|p| p.accounts.get(&account)) {
        Some(rec) if all => Json(&rec.users).into_response(),
        Some(rec) => Json(&rec.users[..rec.users.len().min(USER_LIST_CAP)]).into_response(),
        None => not_found(),
    }
}

async fn list_numbers(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    s.calls.record("telephonenumber.list");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let data = s.data();
    let Some(rec) = data.partitions.get(&partition).and_then(|p| p.accounts.get(&account)) else {
        return not_found();
    };
    let numbers: Vec<Value> = rec
        .account
        .telephone_numbers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "id": format!("{account}-tn{i}"), "phoneNumber": n, "accountId": account, "partitionId": partition,
                "referenceType": "END_USER", "functionType": "ELS", "tollFree": false,
                "operationalStatus": "ACTIVE", "carrierStatus": "ACTIVE",
            })
        })
        .collect();
    Json(numbers).into_response()
}

async fn create_user(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.calls.record("user.create");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut data = s.data();
    let id = data.id("usr");
    let Some(rec) = data.partitions.get_mut(&partition).and_then(|p| p.accounts.get_mut(&account)) else {
        return not_found();
    };
    let mut errors = Vec::new();
    let plan = text(&body, "userProductPlan").unwrap_or_default();
    if !matches!(plan, "STANDARD" | "ADVANCED" | "PROFESSIONAL") {
        errors.push("InvalidUserProductPlan");
    }
    if rec.account.account_type == "SIMPLE" && !rec.users.is_empty() {
        errors.push("SimpleAccountAllowsOneUser");
    }
    if !errors.is_empty() {
        return usual(StatusCode::BAD_REQUEST, &errors);
    }
    let caller_id =
        body.get("callerIdConfig").and_then(|c| c.get("callerIdNumber")).and_then(Value::as_str).unwrap_or_default();
    let mut user = SimUser::new(
        text(&body, "firstName").unwrap_or_default(),
        text(&body, "lastName").unwrap_or_default(),
        plan,
        caller_id,
    );
    user.id = id;
    user.account_id = account;
    if let Some(tz) = text(&body, "timeZone") {
        user.time_zone = tz.to_owned();
    }
    user.extension = text(&body, "extension").map(str::to_owned);
    rec.users.push(user.clone());
    Json(user).into_response()
}

async fn list_lines(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    s.calls.record("deviceline.list");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let data = s.data();
    match data.partitions.get(&partition).and_then(|p| p.accounts.get(&account)) {
        Some(rec) => Json(&rec.lines).into_response(),
        None => not_found(),
    }
}

async fn create_line(
    State(s): State<Arc<Shared>>,
    Path((partition, account)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.calls.record("deviceline.create");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut data = s.data();
    let id = data.id("dl");
    let sip_username = text(&body, "sipUsername").unwrap_or_default().to_owned();
    let mac = text(&body, "macAddress").unwrap_or_default().to_ascii_uppercase();
    let line_number = body.get("lineNumber").and_then(Value::as_u64).unwrap_or(1) as u32;
    let mut errors = Vec::new();
    if sip_username.is_empty() {
        errors.push("InvalidSipUsername");
    } else if data.sip_usernames.contains(&sip_username) {
        errors.push("SipUsernameInUse");
    }
    let valid_mac = mac.len() == 12 && mac.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid_mac {
        errors.push("InvalidMacAddress");
    } else if data.macs.get(&mac).is_some_and(|owner| owner != &account) {
        errors.push("MacAddressInUse");
    }
    let Some(rec) = data.partitions.get_mut(&partition).and_then(|p| p.accounts.get_mut(&account)) else {
        return not_found();
    };
    if valid_mac && rec.lines.iter().any(|l| l.mac_address.eq_ignore_ascii_case(&mac) && l.line_number == line_number) {
        errors.push("LineNumberInUse");
    }
    let user_id = text(&body, "userId").map(str::to_owned);
    if let Some(user_id) = &user_id
        && !rec.users.iter().any(|u| &u.id == user_id)
    {
        errors.push("InvalidUserId");
    }
    if !errors.is_empty() {
        return usual(StatusCode::BAD_REQUEST, &errors);
    }
    let mut line = SimLine::new(&sip_username, line_number, &mac);
    line.id = id;
    line.account_id = account.clone();
    line.partition_id = partition.clone();
    line.user_id = user_id;
    if let Some(name) = text(&body, "deviceName") {
        line.device_name = name.to_owned();
    }
    line.sip_password = text(&body, "sipPassword")
        .map(str::to_owned)
        .unwrap_or_else(|| rand::rng().sample_iter(&Alphanumeric).take(16).map(char::from).collect());
    line.emergency_number = text(&body, "emergencyNumber").unwrap_or_default().to_owned();
    rec.lines.push(line.clone());
    data.sip_usernames.insert(sip_username);
    data.macs.insert(mac, account);
    (StatusCode::CREATED, Json(line)).into_response()
}

async fn delete_line(
    State(s): State<Arc<Shared>>,
    Path((partition, account, line)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    s.calls.record("deviceline.delete");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let mut data = s.data();
    let Some(rec) = data.partitions.get_mut(&partition).and_then(|p| p.accounts.get_mut(&account)) else {
        return not_found();
    };
    let Some(i) = rec.lines.iter().position(|l| l.id == line) else { return not_found() };
    let removed = rec.lines.remove(i);
    let mac_still_used = rec.lines.iter().any(|l| l.mac_address.eq_ignore_ascii_case(&removed.mac_address));
    data.forget_line(&removed, mac_still_used);
    StatusCode::OK.into_response()
}

async fn list_products(State(s): State<Arc<Shared>>, Path(partition): Path<String>, headers: HeaderMap) -> Response {
    s.calls.record("callingplanproduct.list");
    if let Err(r) = s.auth(&headers, &partition) {
        return *r;
    }
    let data = s.data();
    let products: Vec<Value> = data
        .partitions
        .get(&partition)
        .map(|p| p.products.iter().map(|(id, name)| json!({ "id": id, "name": name })).collect())
        .unwrap_or_default();
    Json(products).into_response()
}

impl AlianzaSim {
    /// Serves on `addr` (port 0 picks a free port) on the current Tokio runtime.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            data: Mutex::new(Data {
                logins: HashMap::new(),
                tokens: HashMap::new(),
                token_lifetime: Duration::from_secs(8 * 3600),
                clock_offset: Duration::ZERO,
                partitions: HashMap::new(),
                sip_usernames: HashSet::new(),
                macs: HashMap::new(),
                next_id: 0,
                demo_seeded: HashSet::new(),
            }),
            faults: Faults::new(),
            calls: Calls::new(),
        });
        let router = router(Arc::clone(&shared));
        let router = shared.faults.layer(router);
        let server = SimServer::start(router, addr)?;
        Ok(Self { server, shared })
    }
}
