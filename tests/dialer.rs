//! DialerService end to end: a real gRPC client, the real server, the Elision simulator over
//! HTTP, and PostgreSQL. Nothing of ours is mocked.

mod common;

use std::sync::Arc;

use common::{DEMO_TOKEN, TestApp, authed, bad_fields, reason, tenant_yaml};
use patchbay::{
    dialer::elision::{
        sim::{ElisionSim, Permissions},
        wire::MAX_LEADS_PER_CALL,
    },
    proto::v1::{
        self as pb, dialer_service_client::DialerServiceClient, export_leads_request::Part, export_target::List,
    },
    sim::{Fault, FaultRule},
};
use tonic::{Code, Response, Status, transport::Channel};
use tonic_types::StatusExt;

/// The in-process simulator the demo tenant (`api_url: simulator`) talks to.
fn sim(app: &TestApp) -> Arc<ElisionSim> {
    app.sims.get::<ElisionSim>().expect("the demo tenant starts the Elision simulator")
}

/// A tenant `acme` (token `acme-token`) whose dialer is at `api_url` with this API password.
fn acme_on(api_url: &str, password: &str) -> String {
    tenant_on("acme", "acme-token", api_url, password)
}

/// A tenant whose dialer is at `api_url`, API user `api` with this password.
fn tenant_on(tenant: &str, token: &str, api_url: &str, password: &str) -> String {
    format!(
        "{}triggers:\n  dialer:\n    provider: elision\n    api_url: {api_url}\n    source: test\n    \
         username: api\n    password: '{}'\n",
        tenant_yaml(tenant, token),
        password.replace('\'', "''")
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn agent(user: &str) -> pb::Agent {
    pb::Agent {
        user: user.into(),
        password: "9999".into(),
        level: 1,
        full_name: "Testing Person".into(),
        group: "AGENTS".into(),
        ..Default::default()
    }
}

fn dial_list(list_id: &str, name: &str, campaign_id: &str) -> pb::DialList {
    pb::DialList { list_id: list_id.into(), name: name.into(), campaign_id: campaign_id.into(), active: true }
}

fn metadata(status: &Status, key: &str) -> String {
    status.get_error_details().error_info().and_then(|i| i.metadata.get(key).cloned()).unwrap_or_default()
}

fn domain(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.domain.clone()).unwrap_or_default()
}

/// The phone of lead `i` of a test export.
fn phone(i: usize) -> String {
    format!("555{i:07}")
}

fn leads(range: std::ops::Range<usize>) -> Vec<pb::Lead> {
    range.map(|i| pb::Lead { phone_number: phone(i), first_name: format!("Lead {i}"), ..Default::default() }).collect()
}

/// DialerService as one tenant's CRM calls it: every call carries the tenant's bearer token and
/// answers the message itself.
#[derive(Clone)]
struct Crm {
    client: DialerServiceClient<Channel>,
    tenant: &'static str,
    token: &'static str,
}

impl Crm {
    fn of(app: &TestApp, tenant: &'static str, token: &'static str) -> Self {
        Self { client: DialerServiceClient::new(app.channel.clone()), tenant, token }
    }

    /// The shipped demo tenant.
    fn demo(app: &TestApp) -> Self {
        Self::of(app, "demo", DEMO_TOKEN)
    }

    /// Tenant `acme` of [`acme_on`].
    fn acme(app: &TestApp) -> Self {
        Self::of(app, "acme", "acme-token")
    }

    async fn create_agent(&mut self, agent: pb::Agent) -> Result<pb::AgentResponse, Status> {
        self.create_agent_once(agent, "").await
    }

    /// CreateAgent under `request_id`.
    async fn create_agent_once(&mut self, agent: pb::Agent, request_id: &str) -> Result<pb::AgentResponse, Status> {
        let req =
            pb::CreateAgentRequest { tenant: self.tenant.into(), agent: Some(agent), request_id: request_id.into() };
        self.client.create_agent(authed(req, self.token)).await.map(Response::into_inner)
    }

    async fn update_agent(&mut self, agent: pb::Agent) -> Result<pb::AgentResponse, Status> {
        let req = pb::UpdateAgentRequest { tenant: self.tenant.into(), agent: Some(agent), ..Default::default() };
        self.client.update_agent(authed(req, self.token)).await.map(Response::into_inner)
    }

    async fn create_list(&mut self, list: impl Into<Option<pb::DialList>>) -> Result<pb::DialList, Status> {
        let req = pb::CreateListRequest { tenant: self.tenant.into(), list: list.into(), request_id: String::new() };
        self.client.create_list(authed(req, self.token)).await.map(Response::into_inner)
    }

    async fn active_lists(&mut self) -> Result<Vec<pb::DialList>, Status> {
        let req = pb::ListActiveListsRequest { tenant: self.tenant.into(), ..Default::default() };
        self.client.list_active_lists(authed(req, self.token)).await.map(|r| r.into_inner().lists)
    }

    /// Sends an export: the target, then the leads in messages of `per_message`.
    async fn export(
        &mut self,
        request_id: &str,
        target: List,
        leads: Vec<pb::Lead>,
        per_message: usize,
    ) -> Result<pb::ExportLeadsResponse, Status> {
        let mut msgs = vec![pb::ExportLeadsRequest {
            tenant: self.tenant.into(),
            request_id: request_id.into(),
            part: Some(Part::Target(pb::ExportTarget { list: Some(target) })),
        }];
        for chunk in leads.chunks(per_message.max(1)) {
            msgs.push(pb::ExportLeadsRequest {
                part: Some(Part::Batch(pb::LeadBatch { leads: chunk.to_vec() })),
                ..Default::default()
            });
        }
        self.export_messages(msgs).await
    }

    /// ExportLeads of these messages, as they are.
    async fn export_messages(&mut self, msgs: Vec<pb::ExportLeadsRequest>) -> Result<pb::ExportLeadsResponse, Status> {
        self.client.export_leads(authed(tokio_stream::iter(msgs), self.token)).await.map(Response::into_inner)
    }
}

/// An export of the demo tenant, in messages of 37 leads.
async fn demo_export(
    app: &TestApp,
    request_id: &str,
    target: List,
    leads: Vec<pb::Lead>,
) -> Result<pb::ExportLeadsResponse, Status> {
    Crm::demo(app).export(request_id, target, leads, 37).await
}

fn existing(id: &str) -> List {
    List::ExistingListId(id.into())
}

// ---- CreateAgent ----

#[tokio::test]
async fn create_agent_adds_the_agent_at_the_dialer_and_answers_without_passwords() {
    let app = TestApp::builder().demo().spawn().await;
    let a = pb::Agent {
        phone_login: "1000".into(),
        phone_password: "phonepw".into(),
        email: "agent@example.com".into(),
        ..agent("1000")
    };
    let resp = Crm::demo(&app).create_agent(a).await.unwrap();
    let answered = resp.agent.unwrap();
    assert_eq!(
        (answered.user.as_str(), answered.password.as_str(), answered.phone_password.as_str()),
        ("1000", "", "")
    );
    assert_eq!(resp.vendor_message, "SUCCESS: add_user USER HAS BEEN ADDED - api|1000|***|1|Testing Person|AGENTS");
    let at_dialer = sim(&app).user("1000").unwrap();
    assert_eq!((at_dialer.pass.as_str(), at_dialer.phone_pass.as_str()), ("9999", "phonepw"));
    assert_eq!((at_dialer.level, at_dialer.group.as_str()), (1, "AGENTS"));
    assert_eq!(at_dialer.email, "agent@example.com");
}

#[tokio::test]
async fn create_agent_returns_already_exists_when_the_user_exists() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).add_agent("2000", 1, "AGENTS");
    let status = Crm::demo(&app).create_agent(agent("2000")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::AlreadyExists, "AGENT_ALREADY_EXISTS".into()));
    assert_eq!(domain(&status), "elision.com");
    assert_eq!(metadata(&status, "vendor_code"), "USER ALREADY EXISTS");
    assert_eq!(metadata(&status, "vendor_message"), "ERROR: add_user USER ALREADY EXISTS - api|2000");
}

#[tokio::test]
async fn create_agent_returns_failed_precondition_when_the_user_group_does_not_exist() {
    let app = TestApp::builder().demo().spawn().await;
    let mut a = agent("1000");
    a.group = "NOSUCHGROUP".into();
    let status = Crm::demo(&app).create_agent(a).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "USER_GROUP_NOT_FOUND".into()));
    assert!(metadata(&status, "vendor_message").contains("USER GROUP DOES NOT EXIST"));
}

#[tokio::test]
async fn create_agent_returns_vendor_permission_denied_when_the_api_user_may_not_modify_users() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).set_permissions("api", Permissions { modify_users: false, ..Permissions::ALL });
    let status = Crm::demo(&app).create_agent(agent("1000")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "VENDOR_PERMISSION_DENIED".into()));
    assert_eq!(metadata(&status, "vendor_code"), "USER DOES NOT HAVE PERMISSION TO ADD USERS");
}

#[tokio::test]
async fn create_agent_returns_invalid_argument_on_agent_level_when_the_level_is_not_below_the_api_users() {
    let app = TestApp::builder().demo().spawn().await;
    let mut a = agent("1000");
    a.level = 9;
    let status = Crm::demo(&app).create_agent(a).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["agent.level"]);
    let details = status.get_error_details();
    let description = &details.bad_request().unwrap().field_violations[0].description;
    assert!(description.contains("below the dialer API user's own user level"), "{description}");
    assert!(metadata(&status, "vendor_message").contains("IN THIS USER LEVEL"));
    assert!(sim(&app).user("1000").is_none());
}

#[tokio::test]
async fn create_agent_classifies_the_dialers_message_never_the_callers_values_it_echoes() {
    let app = TestApp::builder().demo().spawn().await;
    let mut c = Crm::demo(&app);
    // A user named like a permission problem that already exists: ALREADY_EXISTS.
    sim(&app).add_agent("permission1", 1, "AGENTS");
    let status = c.create_agent(agent("permission1")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::AlreadyExists, "AGENT_ALREADY_EXISTS".into()));
    // A group named like VICIdial's lockout result, echoed in the login line's `: |` form: the
    // group is missing, the login is fine.
    sim(&app).use_stock_error_lines(true);
    let status = c.create_agent(pb::Agent { group: "LOCK".into(), ..agent("1000") }).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "USER_GROUP_NOT_FOUND".into()));
    assert_eq!(metadata(&status, "vendor_message"), "ERROR: add_user USER GROUP DOES NOT EXIST: |api|LOCK");
}

#[tokio::test]
async fn admin_errors_in_stock_vicidials_form_answer_the_same_codes_as_the_seeds_form() {
    let app = TestApp::builder().demo().spawn().await;
    let dialer = sim(&app);
    dialer.add_agent("2000", 1, "AGENTS");
    let mut c = Crm::demo(&app);
    for stock in [false, true] {
        dialer.use_stock_error_lines(stock);
        let form = if stock { ": |" } else { " - " };
        let exists = c.create_agent(agent("2000")).await.unwrap_err();
        let missing = c.update_agent(pb::Agent { user: "7777".into(), full_name: "X".into(), ..Default::default() });
        let missing = missing.await.unwrap_err();
        let no_group = c.create_agent(pb::Agent { group: "NOSUCHGROUP".into(), ..agent("1001") }).await.unwrap_err();
        let got: Vec<(Code, String)> = [&exists, &missing, &no_group].iter().map(|s| (s.code(), reason(s))).collect();
        assert_eq!(
            got,
            [
                (Code::AlreadyExists, "AGENT_ALREADY_EXISTS".to_owned()),
                (Code::NotFound, "AGENT_NOT_FOUND".to_owned()),
                (Code::FailedPrecondition, "USER_GROUP_NOT_FOUND".to_owned()),
            ],
            "separator {form:?}"
        );
        assert!(metadata(&exists, "vendor_message").contains(&format!("USER ALREADY EXISTS{form}")), "{form:?}");
    }
}

#[tokio::test]
async fn agent_values_the_dialer_would_strip_are_refused_before_it_is_called() {
    let app = TestApp::builder().demo().spawn().await;
    let mut c = Crm::demo(&app);
    let status = c.create_agent(pb::Agent { password: "p@ss!".into(), ..agent("1000") }).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["agent.password".to_owned()]));
    assert!(!format!("{status:?}").contains("p@ss"), "the password is never echoed");
    let status = c.create_agent(agent("o'brien")).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["agent.user"]);
    assert!(status.get_error_details().bad_request().unwrap().field_violations[0].description.contains("`\\'`"));
    assert!(sim(&app).user("obrien").is_none(), "nothing reached the dialer");
}

#[tokio::test]
async fn a_refused_login_is_vendor_auth_failed_and_never_shows_the_password() {
    let app = TestApp::builder().file("acme.yaml", acme_on("simulator", "wrong-password")).spawn().await;
    let mut c = Crm::acme(&app);
    let status = c.create_agent(agent("1000")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "VENDOR_AUTH_FAILED".into()));
    let shown = format!("{} {:?}", status.message(), status.get_error_details());
    assert!(shown.contains("Login incorrect"), "{shown}");
    assert!(!shown.contains("wrong-password"), "{shown}");

    let status = c.active_lists().await.unwrap_err();
    assert_eq!(reason(&status), "VENDOR_AUTH_FAILED");
}

#[tokio::test]
async fn a_garbage_answer_to_create_agent_is_outcome_unknown_and_the_server_keeps_serving() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).faults().plan(FaultRule::new(Fault::Garbage).matching("add_user").times(1));
    let status = Crm::demo(&app).create_agent(agent("1000")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::Unknown, "VENDOR_OUTCOME_UNKNOWN".into()));
    assert!(status.get_error_details().retry_info().is_none(), "a blind retry is not safe");
    assert!(status.message().contains("AGENT_ALREADY_EXISTS"), "says how to find out: {}", status.message());
    Crm::demo(&app).create_agent(agent("1001")).await.unwrap();
}

#[tokio::test]
async fn create_agent_answered_500_502_or_504_after_it_ran_is_outcome_unknown_and_sent_once() {
    let app = TestApp::builder().demo().spawn().await;
    let s = sim(&app);
    for (i, status) in [500, 502, 504].into_iter().enumerate() {
        s.faults_after().plan(FaultRule::new(Fault::Status(status)).matching("add_user").times(1));
        let user = format!("100{i}");
        let err = Crm::demo(&app).create_agent(agent(&user)).await.unwrap_err();
        assert_eq!((err.code(), reason(&err)), (Code::Unknown, "VENDOR_OUTCOME_UNKNOWN".into()), "{status}");
        assert!(err.message().contains(&format!("HTTP {status}")), "{}", err.message());
        assert!(s.user(&user).is_some(), "the dialer did add it: a resend would have met ALREADY_EXISTS");
    }
    assert_eq!(s.calls().get("add_user"), 3);
}

#[tokio::test]
async fn create_agent_refused_with_503_is_unavailable_with_retry_info_and_a_retry_succeeds() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).faults().plan(FaultRule::new(Fault::Status(503)).matching("add_user").times(1));
    let status = Crm::demo(&app).create_agent(agent("1000")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::Unavailable, "VENDOR_UNAVAILABLE".into()));
    assert!(status.get_error_details().retry_info().is_some());
    assert!(sim(&app).user("1000").is_none());
    Crm::demo(&app).create_agent(agent("1000")).await.unwrap();
}

#[tokio::test]
async fn a_dialer_that_refuses_connections_is_unavailable_with_retry_info_for_reads_and_mutations() {
    let url = format!("http://127.0.0.1:{}/dialer/elision_api.php", closed_port());
    let app = TestApp::builder().file("acme.yaml", acme_on(&url, "1234")).spawn().await;
    let mut c = Crm::acme(&app);
    for status in [c.create_agent(agent("1000")).await.unwrap_err(), c.active_lists().await.unwrap_err()] {
        assert_eq!((status.code(), reason(&status)), (Code::Unavailable, "VENDOR_UNAVAILABLE".into()), "{status:?}");
        assert!(status.get_error_details().retry_info().is_some(), "{status:?}");
    }
}

#[tokio::test]
async fn an_api_url_that_is_not_the_api_script_is_vendor_misconfigured_naming_the_key() {
    let dialer = ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    let url = format!("http://{}/dialer/elision.php", dialer.addr());
    let app = TestApp::builder().file("acme.yaml", acme_on(&url, "1234")).spawn().await;
    let status = Crm::acme(&app).active_lists().await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "VENDOR_MISCONFIGURED".into()));
    assert_eq!(metadata(&status, "tenant_key"), "triggers.dialer.api_url");
    assert!(status.message().contains("triggers.dialer.api_url") && status.message().contains("HTTP 404"));
    assert_eq!(dialer.calls().total(), 0);
}

#[tokio::test]
async fn a_dialer_answer_echoing_the_api_password_in_its_json_never_reaches_the_caller() {
    use axum::{Router, routing::any};
    // Elision's add_list errors echo the API user's password, in the message and in the data.
    // (Escaped echoes of passwords with `"` or `/` are scrubbed too, see vicidial_family::scrub;
    // such a password cannot reach a dialer any more: validate refuses it.)
    let router = Router::new().route(
        "/api.php",
        any(|| async { r#"{"success":"no","message":"bad pass pa_ss-w0rd","data":{"password":"pa_ss-w0rd"}}"# }),
    );
    let dialer = patchbay::sim::SimServer::start(router, ([127, 0, 0, 1], 0).into()).unwrap();
    let app =
        TestApp::builder().file("acme.yaml", acme_on(&format!("{}/api.php", dialer.url()), "pa_ss-w0rd")).spawn().await;
    let status = Crm::acme(&app).create_list(dial_list("5001", "Spring promo", "TESTCAMP")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
    let shown = format!("{} {:?}", status.message(), status.get_error_details());
    for form in ["pa_ss", "ss-w0rd", "w0rd"] {
        assert!(!shown.contains(form), "{form} in {shown}");
    }
}

#[tokio::test]
async fn a_create_agent_repeated_with_its_request_id_reaches_the_dialer_once() {
    let app = TestApp::builder().demo().spawn().await;
    let first = Crm::demo(&app).create_agent_once(agent("1000"), "req-1").await.unwrap();
    let again = Crm::demo(&app).create_agent_once(agent("1000"), "req-1").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(sim(&app).calls().get("add_user"), 1);
}

#[tokio::test]
async fn create_agent_idempotency_holds_with_passwords_left_out_of_the_request_fingerprint() {
    let app = TestApp::builder().demo().spawn().await;
    let mut c = Crm::demo(&app);
    let first = c.create_agent_once(agent("1000"), "req-pw").await.unwrap();
    // The same request again: the stored answer, no second add_user.
    let again = c.create_agent_once(agent("1000"), "req-pw").await.unwrap();
    assert_eq!(first, again);
    // Only a password differs: still the same request (passwords are not fingerprinted).
    let mut other_password = agent("1000");
    other_password.password = "4321".into();
    other_password.phone_password = "phone-pw".into();
    let replay = c.create_agent_once(other_password, "req-pw").await.unwrap();
    assert_eq!(first, replay);
    assert_eq!(sim(&app).calls().get("add_user"), 1);
    assert_eq!(sim(&app).user("1000").unwrap().pass, "9999", "the first call's password stands");
    // Another agent under the same request_id: refused on request_id, nothing sent.
    let mut renamed = agent("1000");
    renamed.full_name = "Someone Else".into();
    let status = c.create_agent_once(renamed, "req-pw").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(sim(&app).calls().get("add_user"), 1);
}

#[tokio::test]
async fn a_refused_login_stops_the_tenants_calls_so_that_patchbay_never_locks_the_api_user() {
    let dialer = ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    let app = TestApp::builder().file("acme.yaml", acme_on(&dialer.url(), "wrong-password")).spawn().await;
    for attempt in 1..=12 {
        let status = Crm::acme(&app).active_lists().await.unwrap_err();
        assert_eq!(reason(&status), "VENDOR_AUTH_FAILED", "attempt {attempt}");
        assert!(status.message().contains("Login incorrect"), "attempt {attempt}: {}", status.message());
        assert!(status.message().contains("sends no further call for this tenant"), "{}", status.message());
    }
    assert_eq!(dialer.calls().get("active_lists"), 1, "only the first call reached the dialer");
    assert!(!dialer.is_locked("api"));
}

#[tokio::test]
async fn an_api_user_locked_by_others_is_reported_as_locked_until_an_operator_reloads() {
    let dialer = ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    // Another integration with a wrong password locks the shared API user.
    let http = reqwest::Client::new();
    for _ in 0..10 {
        let form = [("function", "active_lists"), ("source", "other"), ("user", "api"), ("pass", "nope")];
        http.post(dialer.url()).form(&form).send().await.unwrap();
    }
    assert!(dialer.is_locked("api"));
    let app =
        TestApp::builder().file("good.yaml", tenant_on("good", "good-token", &dialer.url(), "1234")).spawn().await;

    // Even the right password is refused, and the caller is told why.
    let mut good = Crm::of(&app, "good", "good-token");
    let status = good.create_agent(agent("1000")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "VENDOR_AUTH_FAILED".into()));
    assert!(status.message().contains("locked the tenant's API user"), "{}", status.message());
    assert_eq!(metadata(&status, "api_user_locked"), "true");
    assert!(metadata(&status, "vendor_message").contains("Too many login attempts"));
    assert!(dialer.user("1000").is_none());
    let status = good.active_lists().await.unwrap_err();
    assert_eq!(metadata(&status, "api_user_locked"), "true");
    let export = good.export("", existing("20042018"), leads(0..3), 3).await;
    assert_eq!(metadata(&export.unwrap_err(), "api_user_locked"), "true");
    assert_eq!(dialer.calls().get("add_user") + dialer.calls().get("add_multi_lead"), 1, "one call, then none");

    // The dialer's admin lifts the lock; an operator's reload lets the tenant call again.
    dialer.unlock("api");
    let mut registry = app.registry_client();
    registry.reload_config(common::authed(pb::ReloadConfigRequest {}, common::ADMIN_TOKEN)).await.unwrap();
    good.active_lists().await.unwrap();
}

#[tokio::test]
async fn mutations_are_audited_and_no_password_reaches_the_audit_trail() {
    let app = TestApp::builder().demo().spawn().await;
    let mut a = agent("1000");
    a.password = "Secr3tAgentPw".into();
    a.phone_password = "Secr3tPhonePw".into();
    let mut c = Crm::demo(&app);
    c.create_agent(a).await.unwrap();
    c.create_list(dial_list("5001", "Spring promo", "NOPE")).await.unwrap_err();
    c.export("exp-1", existing("20042018"), leads(0..3), 10).await.unwrap();

    let events = patchbay::store::audit::page(&app.state.db, Some("demo"), None, 10).await.unwrap();
    let rows: Vec<(String, String, String)> =
        events.iter().map(|e| (e.method.clone(), e.outcome.clone(), e.reason.clone())).collect();
    assert_eq!(
        rows,
        [
            ("patchbay.v1.DialerService/ExportLeads".into(), "OK".into(), String::new()),
            ("patchbay.v1.DialerService/CreateList".into(), "FAILED_PRECONDITION".into(), "CAMPAIGN_NOT_FOUND".into()),
            ("patchbay.v1.DialerService/CreateAgent".into(), "OK".into(), String::new()),
        ]
    );
    assert!(events.iter().all(|e| e.provider == "elision"));
    let dump = format!("{events:?}");
    assert!(!dump.contains("Secr3t"), "{dump}");
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE response IS NOT NULL")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert!(stored.iter().all(|r| !String::from_utf8_lossy(r).contains("Secr3t")));
}

// ---- the field rules ----

#[tokio::test]
async fn every_field_rule_is_a_bad_request_naming_the_field_before_any_dialer_call() {
    let app = TestApp::builder().demo().spawn().await;
    let mut c = Crm::demo(&app);
    type Breaks = fn(&mut pb::Agent);
    let agent_cases: Vec<(&str, Breaks)> = vec![
        ("agent.user", |a| a.user = "1".into()),
        ("agent.user", |a| a.user = "u".repeat(21)),
        ("agent.password", |a| a.password = "p".repeat(21)),
        ("agent.password", |a| a.password.clear()),
        ("agent.level", |a| a.level = 10),
        ("agent.level", |a| a.level = -1),
        ("agent.level", |a| a.level = 0),
        ("agent.full_name", |a| a.full_name = "n".repeat(51)),
        ("agent.full_name", |a| a.full_name.clear()),
        ("agent.group", |a| a.group = "g".repeat(21)),
        ("agent.phone_login", |a| a.phone_login = "l".repeat(21)),
        ("agent.phone_password", |a| a.phone_password = "p".repeat(21)),
        ("agent.voicemail_id", |a| a.voicemail_id = "12345678901".into()),
        ("agent.voicemail_id", |a| a.voicemail_id = "8000a".into()),
        ("agent.email", |a| a.email = "not-an-address".into()),
        ("agent.email", |a| a.email = format!("{}@example.com", "e".repeat(90))),
    ];
    for (field, breaks) in &agent_cases {
        let mut a = agent("1000");
        breaks(&mut a);
        let status = c.create_agent(a).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(bad_fields(&status), [*field], "{field}: {}", status.message());
    }
    // UpdateAgent checks the fields it is given, and needs something to change.
    let status = c.update_agent(pb::Agent { user: "1000".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["agent"]);
    let status =
        c.update_agent(pb::Agent { user: "1000".into(), email: "x@".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["agent.email"]);

    let list_cases = [
        ("list.list_id", dial_list("1", "Test API list", "TESTCAMP")),
        ("list.list_id", dial_list("123456789012345", "Test API list", "TESTCAMP")),
        ("list.list_id", dial_list("11a1", "Test API list", "TESTCAMP")),
        ("list.name", dial_list("1101", "short", "TESTCAMP")),
        ("list.name", dial_list("1101", &"n".repeat(31), "TESTCAMP")),
        ("list.campaign_id", dial_list("1101", "Test API list", "T")),
        ("list.campaign_id", dial_list("1101", "Test API list", "TESTCAMP9")),
    ];
    for (field, list) in list_cases {
        let status = c.create_list(list).await.unwrap_err();
        assert_eq!(bad_fields(&status), [field]);
    }
    let status = c.create_list(None).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["list"]);

    let status = demo_export(&app, "", existing("1"), leads(0..1)).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["target.existing_list_id"]);
    let status =
        demo_export(&app, "", List::NewList(dial_list("1101", "short", "TESTCAMP")), leads(0..1)).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["target.new_list.name"]);

    // Several bad fields are all reported at once.
    let status = c.create_agent(pb::Agent { user: "x".into(), level: 12, ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["agent.user", "agent.password", "agent.full_name", "agent.group", "agent.level"]);
    assert_eq!(sim(&app).calls().total(), 0, "{:?}", sim(&app).calls().snapshot());
}

// ---- UpdateAgent ----

#[tokio::test]
async fn update_agent_changes_only_the_fields_sent() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).add_agent("2000", 1, "AGENTS");
    let changes = pb::Agent { user: "2000".into(), full_name: "Renamed Person".into(), level: 3, ..Default::default() };
    let resp = Crm::demo(&app).update_agent(changes).await.unwrap();
    assert_eq!(resp.vendor_message, "SUCCESS: update_user USER HAS BEEN UPDATED - api|2000");
    let at_dialer = sim(&app).user("2000").unwrap();
    assert_eq!((at_dialer.full_name.as_str(), at_dialer.level), ("Renamed Person", 3));
    assert_eq!((at_dialer.group.as_str(), at_dialer.pass.as_str(), at_dialer.active), ("AGENTS", "agentpass", true));
}

#[tokio::test]
async fn update_agent_with_active_false_deactivates_the_agent_and_true_reactivates_it() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).add_agent("2000", 1, "AGENTS");
    let set_active = |active| pb::Agent { user: "2000".into(), active: Some(active), ..Default::default() };
    Crm::demo(&app).update_agent(set_active(false)).await.unwrap();
    assert!(!sim(&app).user("2000").unwrap().active);
    Crm::demo(&app).update_agent(set_active(true)).await.unwrap();
    assert!(sim(&app).user("2000").unwrap().active);
}

#[tokio::test]
async fn update_agent_returns_not_found_for_a_user_the_dialer_does_not_have() {
    let app = TestApp::builder().demo().spawn().await;
    let changes = pb::Agent { user: "78789".into(), full_name: "Nobody".into(), ..Default::default() };
    let status = Crm::demo(&app).update_agent(changes).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::NotFound, "AGENT_NOT_FOUND".into()));
    assert_eq!(metadata(&status, "vendor_message"), "ERROR: update_user USER DOES NOT EXIST - api|78789");
}

#[tokio::test]
async fn update_agent_returns_failed_precondition_for_a_group_the_dialer_does_not_have() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).add_agent("2000", 1, "AGENTS");
    let changes = pb::Agent { user: "2000".into(), group: "FAKEGROUP".into(), ..Default::default() };
    let status = Crm::demo(&app).update_agent(changes).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "USER_GROUP_NOT_FOUND".into()));
}

#[tokio::test]
async fn update_agent_returns_failed_precondition_naming_an_agent_at_the_api_users_level() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).add_agent("boss", 9, "ADMIN");
    let changes = pb::Agent { user: "boss".into(), active: Some(false), ..Default::default() };
    let status = Crm::demo(&app).update_agent(changes).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status)),
        (Code::FailedPrecondition, "AGENT_LEVEL_TOO_HIGH".into()),
        "the agent's level, not the tenant's rights"
    );
    assert_eq!(metadata(&status, "agent"), "boss");
    assert!(status.message().contains("agent boss"), "{}", status.message());
    assert!(metadata(&status, "vendor_message").contains("UPDATE THIS USER"));
    assert!(sim(&app).user("boss").unwrap().active);
}

#[tokio::test]
async fn update_agent_returns_vendor_permission_denied_when_the_api_user_may_not_modify_users() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).add_agent("2000", 1, "AGENTS");
    sim(&app).set_level("api", 7);
    let changes = pb::Agent { user: "2000".into(), full_name: "X".into(), ..Default::default() };
    let status = Crm::demo(&app).update_agent(changes).await.unwrap_err();
    assert_eq!(reason(&status), "VENDOR_PERMISSION_DENIED");
    assert_eq!(metadata(&status, "vendor_code"), "USER DOES NOT HAVE PERMISSION TO UPDATE USERS");
}

// ---- CreateList and ListActiveLists ----

#[tokio::test]
async fn create_list_creates_the_list_at_the_dialer() {
    let app = TestApp::builder().demo().spawn().await;
    let created = Crm::demo(&app).create_list(dial_list("1101", "Test API list", "TESTCAMP")).await.unwrap();
    assert_eq!(created, dial_list("1101", "Test API list", "TESTCAMP"));
    let at_dialer = sim(&app).list("1101").unwrap();
    assert_eq!(
        (at_dialer.name.as_str(), at_dialer.campaign_id.as_str(), at_dialer.active),
        ("Test API list", "TESTCAMP", true)
    );
}

#[tokio::test]
async fn create_list_refused_by_the_dialer_answers_a_code_and_reason_of_its_own_with_the_vendor_message() {
    let app = TestApp::builder().demo().spawn().await;
    // (the refusal, as a spec; the list; the code, reason and vendor message expected)
    let cases = [
        (
            "a list id the dialer has is ALREADY_EXISTS",
            dial_list("20042018", "Another list", "TESTING"),
            (Code::AlreadyExists, "LIST_ALREADY_EXISTS"),
            "20042018 list already exist",
        ),
        (
            "a campaign the dialer does not have is FAILED_PRECONDITION",
            dial_list("1101", "Test API list", "NOCAMP"),
            (Code::FailedPrecondition, "CAMPAIGN_NOT_FOUND"),
            "NOCAMP campaign does not exist",
        ),
    ];
    for (spec, list, (code, why), vendor_message) in cases {
        let status = Crm::demo(&app).create_list(list).await.unwrap_err();
        assert_eq!((status.code(), reason(&status)), (code, why.into()), "{spec}");
        assert_eq!(metadata(&status, "vendor_message"), vendor_message, "{spec}");
    }
}

#[tokio::test]
async fn create_list_without_the_modify_lists_permission_is_denied_and_the_api_password_is_not_echoed() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).set_permissions("api", Permissions { modify_lists: false, ..Permissions::ALL });
    let status = Crm::demo(&app).create_list(dial_list("1101", "Test API list", "TESTCAMP")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "VENDOR_PERMISSION_DENIED".into()));
    let shown = format!("{} {:?}", status.message(), status.get_error_details());
    assert!(!shown.contains("1234"), "{shown}");
}

#[tokio::test]
async fn list_active_lists_splits_campaign_list_id_and_names_with_dashes() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).add_list("7001", "Spring - promo - 2024", "SALES", true);
    let lists = Crm::demo(&app).active_lists().await.unwrap();
    let find = |id: &str| lists.iter().find(|l| l.list_id == id).cloned();
    assert_eq!(find("20042018").unwrap(), dial_list("20042018", "20042018-hardik", "TESTING"));
    assert_eq!(find("26042018").unwrap(), dial_list("26042018", "26042018_custom-form", "NIKHIL"));
    assert_eq!(find("7001").unwrap(), dial_list("7001", "Spring - promo - 2024", "SALES"));
    assert!(find("3001").is_none(), "inactive lists are not listed");
}

#[tokio::test]
async fn list_active_lists_retries_a_failing_dialer_and_reports_unavailable_when_it_stays_down() {
    let app = TestApp::builder().demo().spawn().await;
    let s = sim(&app);
    s.faults().plan(FaultRule::new(Fault::Status(500)).matching("active_lists").times(2));
    assert!(!Crm::demo(&app).active_lists().await.unwrap().is_empty());
    assert_eq!(s.calls().get("active_lists"), 3);

    s.faults().plan(FaultRule::new(Fault::Status(503)).matching("active_lists"));
    let status = Crm::demo(&app).active_lists().await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::Unavailable, "VENDOR_UNAVAILABLE".into()));
    assert!(status.get_error_details().retry_info().is_some());
}

// ---- ExportLeads ----

#[tokio::test]
async fn export_to_an_existing_list_adds_every_lead_and_answers_in_stream_order() {
    let app = TestApp::builder().demo().spawn().await;
    let resp = demo_export(&app, "", existing("20042018"), leads(0..250)).await.unwrap();
    assert_eq!((resp.list_id.as_str(), resp.accepted, resp.rejected), ("20042018", 250, 0));
    assert_eq!(resp.results.iter().map(|r| r.index).collect::<Vec<_>>(), (0..250).collect::<Vec<_>>());
    assert!(resp.results.iter().all(|r| !r.lead_id.is_empty() && r.error.is_empty()));
    let at_dialer = sim(&app).leads_in("20042018");
    assert_eq!(at_dialer.len(), 250);
    let by_phone: std::collections::HashMap<_, _> =
        at_dialer.iter().map(|l| (l.phone_number.clone(), l.lead_id.to_string())).collect();
    for r in &resp.results {
        assert_eq!(by_phone[&r.phone_number], r.lead_id, "lead {}", r.index);
    }
    // Batches overlap (several calls in flight), so the dialer's order is not the stream's.
    let seventh = at_dialer.iter().find(|l| l.phone_number == phone(7)).expect("lead 7 at the dialer");
    assert_eq!(seventh.first_name, "Lead 7");
}

#[tokio::test]
async fn export_to_a_new_list_creates_it_first() {
    let app = TestApp::builder().demo().spawn().await;
    let new = List::NewList(dial_list("1101", "Test API list", "TESTCAMP"));
    let resp = demo_export(&app, "exp-new", new, leads(0..5)).await.unwrap();
    assert_eq!((resp.list_id.as_str(), resp.accepted), ("1101", 5));
    let s = sim(&app);
    assert_eq!(s.list("1101").unwrap().name, "Test API list");
    assert_eq!(s.lead_count("1101"), 5);
    assert_eq!((s.calls().get("add_list"), s.calls().get("add_multi_lead")), (1, 1));
}

#[tokio::test]
async fn export_to_a_new_list_whose_campaign_is_missing_fails_before_any_lead() {
    let app = TestApp::builder().demo().spawn().await;
    let new = List::NewList(dial_list("1101", "Test API list", "NOCAMP"));
    let status = demo_export(&app, "exp-nocamp", new, leads(0..5)).await.unwrap_err();
    assert_eq!(reason(&status), "CAMPAIGN_NOT_FOUND");
    assert_eq!(sim(&app).calls().get("add_multi_lead"), 0);
    // Nothing was done, so the same request_id may be used again once the campaign exists.
    sim(&app).add_campaign("NOCAMP");
    let new = List::NewList(dial_list("1101", "Test API list", "NOCAMP"));
    assert_eq!(demo_export(&app, "exp-nocamp", new, leads(0..5)).await.unwrap().accepted, 5);
}

#[tokio::test]
async fn export_mixing_good_and_bad_leads_reports_each_by_its_index() {
    let app = TestApp::builder().demo().spawn().await;
    let mut all = leads(0..10);
    all[2].phone_number = "12-34".into(); // 4 digits: patchbay refuses it
    all[5].phone_number = "+1 (555) 010-0199".into(); // normalised to 11 digits
    all[7].phone_number = "1".repeat(17); // 17 digits: patchbay refuses it
    let resp = demo_export(&app, "", existing("20042018"), all).await.unwrap();
    assert_eq!((resp.accepted, resp.rejected), (8, 2));
    let r = &resp.results;
    assert_eq!((r[2].index, r[2].phone_number.as_str(), r[2].lead_id.as_str()), (2, "1234", ""));
    assert!(r[2].error.contains("6-16 digits"), "{}", r[2].error);
    assert!(r[7].error.contains("has 17"), "{}", r[7].error);
    assert_eq!(r[5].phone_number, "15550100199");
    assert!(!r[5].lead_id.is_empty());
    assert_eq!(sim(&app).lead_count("20042018"), 8);
    assert_eq!(sim(&app).calls().get("add_multi_lead"), 1, "the good leads go in one batch");
}

#[tokio::test]
async fn export_refuses_leads_the_dialer_would_cut_or_dial_with_the_wrong_country_code() {
    let app = TestApp::builder().demo().spawn().await;
    let mut all = leads(0..6);
    all[0].first_name = "f".repeat(30); // at the column's width: sent
    all[1].first_name = "f".repeat(31);
    all[2].vendor_lead_code = "v".repeat(21);
    all[3].email = format!("{}@example.com", "e".repeat(60)); // 72 characters
    all[4].phone_code = "44".into(); // Elision's add_multi_lead takes no country code
    all[5].phone_code = "1".into();
    let resp = demo_export(&app, "", existing("20042018"), all).await.unwrap();
    assert_eq!((resp.accepted, resp.rejected), (2, 4));
    let errors: Vec<&str> = resp.results.iter().map(|r| r.error.as_str()).collect();
    assert_eq!(errors[0], "");
    assert!(errors[1].starts_with("first_name must be at most 30 characters (has 31)"), "{}", errors[1]);
    assert!(errors[2].starts_with("vendor_lead_code must be at most 20"), "{}", errors[2]);
    assert!(errors[3].starts_with("email must be at most 70 characters (has 72)"), "{}", errors[3]);
    assert!(errors[4].contains("takes no country code"), "{}", errors[4]);
    assert_eq!(errors[5], "");
    assert_eq!(sim(&app).lead_count("20042018"), 2);
}

#[tokio::test]
async fn export_whose_vendor_batch_fails_once_with_503_not_taken_is_sent_again_and_succeeds() {
    let app = TestApp::builder().demo().spawn().await;
    let s = sim(&app);
    // 503: the web server or proxy answered without running the script, so a resend is safe.
    s.faults().plan(FaultRule::new(Fault::Status(503)).matching("add_multi_lead").times(1));
    let resp = demo_export(&app, "exp-retry", existing("20042018"), leads(0..150)).await.unwrap();
    assert_eq!((resp.accepted, resp.rejected), (150, 0));
    assert_eq!(s.calls().get("add_multi_lead"), 3, "two batches, one of them sent twice");
    assert_eq!(s.lead_count("20042018"), 150);
}

#[tokio::test]
async fn export_whose_batch_is_refused_with_503_every_attempt_is_reported_for_exactly_its_leads_and_a_repeat_sends_them()
 {
    let app = TestApp::builder().demo().spawn().await;
    let s = sim(&app);
    // Refuse every attempt at the second batch (leads 100..200), whose first lead is lead 100.
    s.faults().plan(FaultRule::new(Fault::Status(503)).matching(format!("add_multi_lead {}", phone(100))).times(3));
    let resp = demo_export(&app, "exp-fail", existing("20042018"), leads(0..250)).await.unwrap();
    assert_eq!((resp.accepted, resp.rejected), (150, 100));
    for r in &resp.results {
        let in_failed_batch = (100..200).contains(&r.index);
        assert_eq!(r.lead_id.is_empty(), in_failed_batch, "lead {}", r.index);
        if in_failed_batch {
            assert!(r.error.contains("HTTP 503") && r.error.contains("3 attempts"), "{}", r.error);
        }
    }
    assert_eq!(s.calls().get("add_multi_lead"), 5);

    // The same export again: only the failed batch is sent.
    let again = demo_export(&app, "exp-fail", existing("20042018"), leads(0..250)).await.unwrap();
    assert_eq!((again.accepted, again.rejected), (250, 0));
    assert_eq!(s.calls().get("add_multi_lead"), 6);
    assert_eq!(s.lead_count("20042018"), 250);
    assert_eq!(again.results[0], resp.results[0], "settled outcomes are answered as recorded");
}

#[tokio::test]
async fn export_whose_batch_is_answered_500_502_or_504_reports_its_leads_outcome_unknown_and_never_resends_them() {
    let app = TestApp::builder().demo().spawn().await;
    let s = sim(&app);
    for (round, status) in [500u16, 502, 504].into_iter().enumerate() {
        // Each round exports 250 leads of its own; the dialer adds the second batch (100..200)
        // and then fails to say so, as PHP failing after the insert or a proxy timing out would.
        let offset = round * 1000;
        let request_id = format!("exp-unknown-{status}");
        s.faults_after().plan(
            FaultRule::new(Fault::Status(status)).matching(format!("add_multi_lead {}", phone(offset + 100))).times(1),
        );
        let (calls, count) = (s.calls().get("add_multi_lead"), s.lead_count("20042018"));
        let resp = demo_export(&app, &request_id, existing("20042018"), leads(offset..offset + 250)).await.unwrap();
        assert_eq!((resp.accepted, resp.rejected), (150, 100), "{status}");
        for r in &resp.results[100..200] {
            assert!(r.lead_id.is_empty(), "lead {}", r.index);
            assert!(
                r.error.starts_with("outcome unknown") && r.error.contains(&format!("HTTP {status}")),
                "{}",
                r.error
            );
            assert!(r.error.contains("not sent again") && r.error.contains("list 20042018"), "{}", r.error);
        }
        assert_eq!(s.calls().get("add_multi_lead") - calls, 3, "{status}: the batch was sent once");
        assert_eq!(s.lead_count("20042018") - count, 250, "{status}: every lead is at the dialer once");

        // The same export again sends nothing: the unknown leads are settled, not failed.
        let again = demo_export(&app, &request_id, existing("20042018"), leads(offset..offset + 250)).await.unwrap();
        assert_eq!(again, resp, "{status}");
        assert_eq!(s.calls().get("add_multi_lead") - calls, 3, "{status}: the repeat sent nothing");
        assert_eq!(s.lead_count("20042018") - count, 250, "{status}: no lead added twice");
    }
}

#[tokio::test]
async fn export_to_a_new_list_whose_add_list_answer_is_lost_is_outcome_unknown_and_a_repeat_goes_on_with_the_list() {
    let app = TestApp::builder().demo().spawn().await;
    let s = sim(&app);
    s.faults_after().plan(FaultRule::new(Fault::Status(502)).matching("add_list").times(1));
    let new = || List::NewList(dial_list("1101", "Test API list", "TESTCAMP"));
    let status = demo_export(&app, "exp-lost-list", new(), leads(0..5)).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::Unknown, "VENDOR_OUTCOME_UNKNOWN".into()));
    assert!(status.message().contains("same request_id"), "{}", status.message());
    assert!(s.list("1101").is_some());
    assert_eq!(s.calls().get("add_multi_lead"), 0);

    let resp = demo_export(&app, "exp-lost-list", new(), leads(0..5)).await.unwrap();
    assert_eq!(resp.accepted, 5);
    assert_eq!(s.lead_count("1101"), 5);
}

#[tokio::test]
async fn export_sent_twice_with_one_request_id_adds_no_lead_twice() {
    let app = TestApp::builder().demo().spawn().await;
    let s = sim(&app);
    let mut all = leads(0..120);
    all[3].phone_number = "123".into();
    let new = || List::NewList(dial_list("1101", "Test API list", "TESTCAMP"));
    let first = demo_export(&app, "exp-twice", new(), all.clone()).await.unwrap();
    let calls = s.calls().snapshot();
    let second = demo_export(&app, "exp-twice", new(), all).await.unwrap();
    assert_eq!(first, second);
    assert_eq!((second.accepted, second.rejected), (119, 1));
    assert_eq!(s.lead_count("1101"), 119);
    assert_eq!(s.calls().snapshot(), calls, "the repeat makes no dialer call at all");

    let events = patchbay::store::audit::page(&app.state.db, Some("demo"), None, 1).await.unwrap();
    assert_eq!(events[0].reason, "IDEMPOTENT_REPLAY");
}

#[tokio::test]
async fn a_repeat_that_carries_more_leads_sends_only_the_new_ones() {
    let app = TestApp::builder().demo().spawn().await;
    demo_export(&app, "exp-grow", existing("20042018"), leads(0..60)).await.unwrap();
    let resp = demo_export(&app, "exp-grow", existing("20042018"), leads(0..90)).await.unwrap();
    assert_eq!(resp.accepted, 90);
    assert_eq!(sim(&app).lead_count("20042018"), 90);
    let events = patchbay::store::audit::page(&app.state.db, Some("demo"), None, 1).await.unwrap();
    assert_eq!(events[0].reason, "", "a repeat that sent leads is not a replay");
}

#[tokio::test]
async fn a_request_id_reused_for_another_target_or_other_leads_is_invalid_argument() {
    let app = TestApp::builder().demo().spawn().await;
    demo_export(&app, "exp-reuse", existing("20042018"), leads(0..3)).await.unwrap();
    let status = demo_export(&app, "exp-reuse", existing("26042018"), leads(0..3)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["request_id"]);
    let status = demo_export(&app, "exp-reuse", existing("20042018"), leads(10..13)).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(sim(&app).lead_count("20042018"), 3);
}

#[tokio::test]
async fn export_batches_stay_within_the_dialers_limits() {
    let app = TestApp::builder().demo().spawn().await;
    // The simulator refuses a batch above its limit, so an oversized batch would show as rejected leads.
    let n = MAX_LEADS_PER_CALL * 4 + 50;
    let resp = Crm::demo(&app).export("", existing("20042018"), leads(0..n), 7).await.unwrap();
    assert_eq!(resp.accepted as usize, n);
    assert_eq!(sim(&app).calls().get("add_multi_lead"), 5);
}

#[tokio::test]
async fn export_to_a_list_that_is_not_active_is_failed_precondition() {
    let app = TestApp::builder().demo().spawn().await;
    let status = demo_export(&app, "", existing("3001"), leads(0..3)).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "LIST_NOT_ACTIVE".into()));
    assert_eq!(sim(&app).calls().get("add_multi_lead"), 0);
}

#[tokio::test]
async fn export_with_a_refused_login_is_vendor_auth_failed() {
    let app = TestApp::builder().file("acme.yaml", acme_on("simulator", "wrong-password")).spawn().await;
    let status = Crm::acme(&app).export("", existing("20042018"), leads(0..3), 10).await.unwrap_err();
    assert_eq!((status.code(), reason(&status)), (Code::FailedPrecondition, "VENDOR_AUTH_FAILED".into()));
}

#[tokio::test]
async fn export_stops_at_the_first_batch_the_api_user_may_not_send() {
    let app = TestApp::builder().demo().spawn().await;
    sim(&app).set_permissions("api", Permissions { modify_leads: false, ..Permissions::ALL });
    let status = demo_export(&app, "", existing("20042018"), leads(0..500)).await.unwrap_err();
    assert_eq!(reason(&status), "VENDOR_PERMISSION_DENIED");
    assert!(sim(&app).calls().get("add_multi_lead") < 5, "the export stopped early");
}

#[tokio::test]
async fn an_export_stream_must_start_with_its_target_and_keep_its_tenant() {
    let app = TestApp::builder().demo().spawn().await;
    let batch_first = vec![pb::ExportLeadsRequest {
        tenant: "demo".into(),
        request_id: String::new(),
        part: Some(Part::Batch(pb::LeadBatch { leads: leads(0..1) })),
    }];
    let mut c = Crm::demo(&app);
    let status = c.export_messages(batch_first).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["target"]);

    let target = pb::ExportLeadsRequest {
        tenant: "demo".into(),
        request_id: String::new(),
        part: Some(Part::Target(pb::ExportTarget { list: Some(existing("20042018")) })),
    };
    let other_tenant = pb::ExportLeadsRequest {
        tenant: "other".into(),
        request_id: String::new(),
        part: Some(Part::Batch(pb::LeadBatch { leads: leads(0..1) })),
    };
    let status = c.export_messages(vec![target, other_tenant]).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["tenant"]);

    let status = c.export_messages(Vec::new()).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["target"]);
    let unauthenticated = Crm::of(&app, "demo", "bad-token").export("", existing("20042018"), leads(0..1), 1).await;
    assert_eq!(unauthenticated.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_repeated_export_after_a_restart_adds_no_lead_twice() {
    common::init_tracing();
    let dialer = ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    let app = TestApp::builder().file("acme.yaml", acme_on(&dialer.url(), "1234")).spawn().await;
    let send = |app: &TestApp| {
        let mut c = Crm::acme(app);
        async move { c.export("exp-restart", existing("20042018"), leads(0..150), 40).await }
    };
    let first = send(&app).await.unwrap();
    let (dir, database) = app.stop().await;
    let calls = dialer.calls().get("add_multi_lead");

    let app = TestApp::builder().providers_dir(dir).database(database).spawn().await;
    let second = send(&app).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(dialer.lead_count("20042018"), 150);
    assert_eq!(dialer.calls().get("add_multi_lead"), calls);
}

// ---- the tenant's own vendor in-flight limit ----

#[tokio::test]
async fn a_tenant_files_vendor_in_flight_limit_queues_that_tenants_vendor_calls() {
    use std::time::{Duration, Instant};
    let dialer = ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    dialer.faults().set_latency(Duration::from_millis(300));
    let yaml = acme_on(&dialer.url(), "1234").replace("triggers:\n", "limits:\n  vendor_in_flight: 1\ntriggers:\n");
    let app = TestApp::builder().file("acme.yaml", yaml).spawn().await;
    let started = Instant::now();
    let calls = (0..3).map(|_| {
        let mut crm = Crm::acme(&app);
        async move { crm.active_lists().await }
    });
    for answer in futures::future::join_all(calls).await {
        answer.unwrap();
    }
    // Three 300 ms dialer calls, one at a time (without the limit they would overlap).
    assert!(started.elapsed() >= Duration::from_millis(850), "one vendor call at a time: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_vendor_in_flight_limit_out_of_range_is_a_diagnostic_naming_the_key() {
    let yaml = acme_on("http://127.0.0.1:9/dialer", "1234")
        .replace("triggers:\n", "limits:\n  vendor_in_flight: 0\ntriggers:\n");
    let app = TestApp::builder().file("other.yaml", tenant_yaml("other", "other-token")).spawn().await;
    let answer = app.validate_config("acme.yaml", yaml).await;
    let problems: Vec<_> = answer.diagnostics.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
    assert_eq!(problems, [("limits.vendor_in_flight", "must be 1-1000 (is 0)")]);
}
