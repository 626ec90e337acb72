//! The simulator's API functions (add_user, update_user, add_list, active_lists,
//! add_multi_lead), answered in the VICIdial family's answer lines with the document's rules.
//! The state they work on is in `mod.rs`.

use super::*;

/// update_user's "make this field empty".
const BLANK: &str = "--BLANK--";

/// Decodes `a=1&b=x+y` pairs (query string or form body).
fn decode_form(text: &str) -> Vec<(String, String)> {
    let mut url = reqwest::Url::parse("http://sim/").expect("a valid base URL");
    url.set_query(Some(text));
    url.query_pairs().into_owned().collect()
}

/// An answer, in the style of the function.
enum Answer {
    Text(String),
    Json(Value),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            // VICIdial answers text/html, status 200 even for errors.
            Answer::Text(line) => {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], format!("{line}\n")).into_response()
            }
            Answer::Json(v) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        }
    }
}

pub(super) async fn handle(State(sim): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let mut params: HashMap<String, String> = HashMap::new();
    if method == Method::POST {
        params.extend(decode_form(&String::from_utf8_lossy(&body)));
    }
    params.extend(decode_form(uri.query().unwrap_or_default()));
    let function = params.get("function").cloned().unwrap_or_default();
    sim.calls.record(if function.is_empty() { "(none)" } else { &function });

    let leads = (function == wire::ADD_MULTI_LEAD).then(|| parse_leads(params.get("multi_leads")));
    let key = match &leads {
        Some(Ok(leads)) => {
            format!("{function} {}", leads.first().map(|l| text_of(l, "phone_number")).unwrap_or_default())
        }
        _ => function.clone(),
    };
    if let Some(resp) = sim.faults.intercept(&key).await {
        return resp;
    }
    let answer = sim.state().handle(&function, &params, leads, Instant::now());
    if let Some(resp) = sim.faults_after.intercept(&key).await {
        return resp;
    }
    answer.into_response()
}

fn parse_leads(raw: Option<&String>) -> Result<Vec<Value>, ()> {
    match raw.map(|r| serde_json::from_str::<Value>(r)) {
        Some(Ok(Value::Array(items))) if !items.is_empty() => Ok(items),
        _ => Err(()),
    }
}

/// A lead field as text: the document's example sends numbers for phone and lead code.
fn text_of(lead: &Value, key: &str) -> String {
    match lead.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn len_in(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

fn digits_in(s: &str, min: usize, max: usize) -> bool {
    s.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&s.len())
}

impl SimState {
    fn handle(
        &mut self,
        function: &str,
        p: &HashMap<String, String>,
        leads: Option<Result<Vec<Value>, ()>>,
        now: Instant,
    ) -> Answer {
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
        let (user, pass) = (get("user"), get("pass"));
        let api = match self.login(user, pass, now) {
            Ok(api) => api,
            Err(line) => return Answer::Text(line),
        };
        if !len_in(get("source"), 2, 20) {
            return Answer::Text(format!("ERROR: {function} YOU MUST USE ALL REQUIRED FIELDS - {user}|source"));
        }
        match function {
            wire::ADD_USER => {
                let line = self.add_user(&api, &get);
                Answer::Text(self.admin_error_form(line))
            }
            wire::UPDATE_USER => {
                let line = self.update_user(&api, &get);
                Answer::Text(self.admin_error_form(line))
            }
            wire::ADD_LIST => Answer::Json(self.add_list(&api, &get)),
            wire::ACTIVE_LISTS => Answer::Json(self.active_lists()),
            wire::ADD_MULTI_LEAD => Answer::Json(self.add_multi_lead(&api, leads.unwrap_or(Err(())))),
            "" => Answer::Text(format!("ERROR: NO FUNCTION SPECIFIED - {user}|")),
            other => Answer::Text(format!("ERROR: {other} FUNCTION NOT FOUND - {user}|{other}")),
        }
    }

    /// An admin error line in the form this dialer writes: the seed's ` - `, or stock VICIdial's
    /// `: |` (see [`super::ElisionSim::use_stock_error_lines`]).
    fn admin_error_form(&self, line: String) -> String {
        match line.strip_prefix("ERROR: ") {
            Some(rest) if self.stock_error_lines => match rest.split_once(" - ") {
                Some((reason, data)) => format!("ERROR: {reason}: |{data}"),
                None => line,
            },
            _ => line,
        }
    }

    /// VICIdial's user_authorization: a good login resets the failures; ten bad ones lock the
    /// user for 15 minutes, during which even the right password is refused.
    fn login(&mut self, user: &str, pass: &str, now: Instant) -> Result<SimUser, String> {
        let login = self.logins.entry(user.to_owned()).or_default();
        if login.locked_until.is_some_and(|t| t > now) {
            return Err(format!("Too many login attempts, try again in 15 minutes: |{user}|LOCK|"));
        }
        match self.users.get(user) {
            Some(u) if u.pass == pass && u.active => {
                *login = Login::default();
                Ok(u.clone())
            }
            known => {
                if known.is_some() {
                    login.failures += 1;
                    if login.failures >= LOCKOUT_AFTER {
                        login.failures = 0;
                        login.locked_until = Some(now + LOCKOUT_FOR);
                    }
                }
                Err(format!("ERROR: Login incorrect, please try again: |{user}|{pass}|BAD|"))
            }
        }
    }

    fn add_user<'a>(&mut self, api: &SimUser, get: &impl Fn(&str) -> &'a str) -> String {
        let a = &api.user;
        if api.level < 8 || !api.permissions.modify_users {
            return format!("ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS - {a}|0");
        }
        let (user, pass, level, name, group) = (
            get("agent_user"),
            get("agent_pass"),
            get("agent_user_level"),
            get("agent_full_name"),
            get("agent_user_group"),
        );
        let level_ok = level.len() == 1 && matches!(level.as_bytes()[0], b'1'..=b'9');
        if !(len_in(user, 2, 20) && len_in(pass, 1, 20) && level_ok && len_in(name, 1, 50) && len_in(group, 1, 20)) {
            return format!("ERROR: add_user YOU MUST USE ALL REQUIRED FIELDS - {a}|{user}|");
        }
        let level_n = level.as_bytes()[0] - b'0';
        // The API user may only create users below its own level.
        if level_n >= api.level {
            return format!(
                "ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS IN THIS USER LEVEL - {a}|{level}"
            );
        }
        if !self.groups.contains(group) {
            return format!("ERROR: add_user USER GROUP DOES NOT EXIST - {a}|{group}");
        }
        if self.users.contains_key(user) {
            return format!("ERROR: add_user USER ALREADY EXISTS - {a}|{user}");
        }
        if let Some(err) = optional_field_error("add_user", a, get) {
            return err;
        }
        let agent = SimUser {
            user: user.to_owned(),
            pass: pass.to_owned(),
            level: level_n,
            full_name: name.to_owned(),
            group: group.to_owned(),
            phone_login: get("phone_login").to_owned(),
            phone_pass: get("phone_pass").to_owned(),
            voicemail_id: get("voicemail_id").to_owned(),
            email: get("email").to_owned(),
            active: true,
            permissions: Permissions::default(),
        };
        self.users.insert(user.to_owned(), agent);
        // VICIdial echoes the new agent's password here.
        format!("SUCCESS: add_user USER HAS BEEN ADDED - {a}|{user}|{pass}|{level}|{name}|{group}")
    }

    fn update_user<'a>(&mut self, api: &SimUser, get: &impl Fn(&str) -> &'a str) -> String {
        let a = &api.user;
        if api.level < 8 || !api.permissions.modify_users {
            return format!("ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE USERS - {a}|0");
        }
        let user = get("agent_user");
        if !len_in(user, 2, 20) {
            return format!("ERROR: update_user YOU MUST USE ALL REQUIRED FIELDS - {a}||");
        }
        let Some(target_level) = self.users.get(user).map(|u| u.level) else {
            return format!("ERROR: update_user USER DOES NOT EXIST - {a}|{user}");
        };
        if user != a && target_level >= api.level {
            return format!("ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE THIS USER - {a}|{user}");
        }
        let opt = |k: &str| Some(get(k)).filter(|v| !v.is_empty());
        let optional = " THIS IS AN OPTIONAL FIELD";
        if opt("agent_pass").is_some_and(|v| !len_in(v, 1, 20)) {
            return format!("ERROR: update_user YOU MUST USE A VALID PASSWORD,{optional} - {a}|");
        }
        if let Some(level) = opt("agent_user_level") {
            let ok = level.len() == 1
                && matches!(level.as_bytes()[0], b'1'..=b'9')
                && level.as_bytes()[0] - b'0' < api.level;
            if !ok {
                return format!(
                    "ERROR: update_user YOU MUST USE A VALID USER LEVEL,{optional} - {a}|{level}|{}",
                    api.level
                );
            }
        }
        if opt("agent_full_name").is_some_and(|v| !len_in(v, 1, 50)) {
            return format!("ERROR: update_user YOU MUST USE A VALID FULL NAME,{optional} - {a}|");
        }
        if let Some(group) = opt("agent_user_group")
            && !(len_in(group, 1, 20) && self.groups.contains(group))
        {
            return format!("ERROR: update_user YOU MUST USE A VALID USER GROUP,{optional} - {a}|{group}|0");
        }
        // `--BLANK--` empties an optional field, as in the VICIdial source Elision derives from.
        let checked = |k: &str| if get(k) == BLANK { "" } else { get(k) };
        if let Some(err) = optional_field_error("update_user", a, &checked) {
            return err;
        }
        if let Some(active) = opt("active")
            && active != "Y"
            && active != "N"
        {
            return format!("ERROR: update_user ACTIVE MUST BE Y OR N,{optional} - {a}");
        }
        let u = self.users.get_mut(user).expect("checked above");
        let set = |field: &mut String, key: &str| {
            if let Some(v) = opt(key) {
                *field = if v == BLANK { String::new() } else { v.to_owned() };
            }
        };
        set(&mut u.pass, "agent_pass");
        set(&mut u.full_name, "agent_full_name");
        set(&mut u.group, "agent_user_group");
        set(&mut u.phone_login, "phone_login");
        set(&mut u.phone_pass, "phone_pass");
        set(&mut u.voicemail_id, "voicemail_id");
        set(&mut u.email, "email");
        if let Some(level) = opt("agent_user_level") {
            u.level = level.as_bytes()[0] - b'0';
        }
        if let Some(active) = opt("active") {
            u.active = active == "Y";
        }
        format!("SUCCESS: update_user USER HAS BEEN UPDATED - {a}|{user}")
    }

    fn add_list<'a>(&mut self, api: &SimUser, get: &impl Fn(&str) -> &'a str) -> Value {
        let (id, name, campaign) = (get("list_id"), get("list_name"), get("campaign_id"));
        let data = json!({"list_id": id, "list_name": name, "campaign_id": campaign});
        let refuse = |message: String, data: Value| json!({"success": false, "message": message, "data": data});
        if api.level < 8 || !api.permissions.modify_lists {
            // Elision echoes the API user's password here.
            return refuse(
                format!("{} User does not have permission to add list in the system", api.user),
                json!({"user": api.user, "password": api.pass}),
            );
        }
        if !(digits_in(id, 2, 14) && len_in(name, 6, 30) && len_in(campaign, 2, 8)) {
            return refuse("Please send list id , campaign id and list name".into(), data);
        }
        let active = match get("active") {
            "" | "N" => false,
            "Y" => true,
            _ => return refuse("active must be Y or N".into(), data),
        };
        if !self.campaigns.contains(campaign) {
            return refuse(format!("{campaign} campaign does not exist"), data);
        }
        if self.lists.contains_key(id) {
            return refuse(format!("{id} list already exist"), data);
        }
        self.lists.insert(
            id.to_owned(),
            SimList { list_id: id.to_owned(), name: name.to_owned(), campaign_id: campaign.to_owned(), active },
        );
        json!({"success": true, "message": format!("{id} list created"), "data": data})
    }

    fn active_lists(&self) -> Value {
        let data: Vec<String> = self
            .lists
            .values()
            .filter(|l| l.active)
            .map(|l| format!("{}-{}-{}", l.campaign_id, l.list_id, l.name))
            .collect();
        json!({"success": true, "message": "lists are listed successfully", "data": data})
    }

    fn add_multi_lead(&mut self, api: &SimUser, leads: Result<Vec<Value>, ()>) -> Value {
        let refuse = |m: &str| json!(["ERROR", format!("add_multi_lead {m}"), api.user, ""]);
        if api.level < 8 || !api.permissions.modify_leads {
            return refuse("USER DOES NOT HAVE PERMISSION TO ADD LEADS");
        }
        let Ok(leads) = leads else { return refuse("YOU MUST USE ALL REQUIRED FIELDS") };
        if leads.len() > MAX_LEADS_PER_CALL {
            return refuse(&format!("TOO MANY LEADS, AT MOST {MAX_LEADS_PER_CALL} PER CALL"));
        }
        let mut answer = serde_json::Map::new();
        for (i, lead) in leads.iter().enumerate() {
            let raw_phone = text_of(lead, "phone_number");
            let phone: String = raw_phone.chars().filter(char::is_ascii_digit).collect();
            let list_id = text_of(lead, "list_id");
            let entry = if !(6..=16).contains(&phone.len()) {
                json!({"success": false, "message": "Invalid phone number", "data": raw_phone})
            } else if !self.lists.contains_key(&list_id) {
                json!({"success": false, "message": "Invalid list id", "data": list_id})
            } else {
                let lead_id = self.next_lead_id;
                self.next_lead_id += 1;
                let data = format!("{phone}|{list_id}|{lead_id}||NEW|");
                self.leads.push(SimLead {
                    lead_id,
                    list_id,
                    phone_number: phone,
                    first_name: text_of(lead, "first_name"),
                    last_name: text_of(lead, "last_name"),
                    email: text_of(lead, "email"),
                    city: text_of(lead, "city"),
                    postal_code: text_of(lead, "postal_code"),
                    vendor_lead_code: text_of(lead, "vendor_lead_code"),
                });
                json!({"success": true, "message": "Record(s) Created", "data": data})
            };
            answer.insert(format!("lead {}", i + 1), entry);
        }
        Value::Object(answer)
    }
}

/// The optional agent fields' checks, in the dialer's order and wording.
fn optional_field_error<'a>(function: &str, api: &str, get: &impl Fn(&str) -> &'a str) -> Option<String> {
    let present = |k: &str| Some(get(k)).filter(|v| !v.is_empty());
    let optional = "THIS IS AN OPTIONAL FIELD";
    if let Some(login) = present("phone_login")
        && !len_in(login, 1, 20)
    {
        return Some(format!("ERROR: {function} YOU MUST USE A VALID PHONE LOGIN, {optional} - {api}|{login}|0|0"));
    }
    if present("phone_pass").is_some_and(|v| !len_in(v, 1, 20)) {
        return Some(format!("ERROR: {function} YOU MUST USE A VALID PHONE PASSWORD, {optional} - {api}|0"));
    }
    if present("voicemail_id").is_some_and(|v| !digits_in(v, 1, 10)) {
        return Some(format!("ERROR: {function} YOU MUST USE A VALID VOICEMAIL ID, {optional} - {api}"));
    }
    if present("email").is_some_and(|v| !len_in(v, 1, 100) || !v.contains('@')) {
        return Some(format!("ERROR: {function} YOU MUST USE A VALID EMAIL, {optional} - {api}"));
    }
    None
}

impl ElisionSim {
    /// Starts on `addr` (port 0: a free port) with the demo data, on the current Tokio runtime.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        let shared =
            Shared { state: Arc::default(), faults: Faults::new(), faults_after: Faults::new(), calls: Calls::new() };
        seed_demo(&mut shared.state());
        let router = Router::new()
            .route(PATH, any(handle))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(shared.clone());
        let server = SimServer::start(router, addr)?;
        Ok(Self { server, shared })
    }
}
