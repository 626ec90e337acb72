//! DialerService on stock VICIdial, end to end: a real gRPC client, the real server (in process,
//! and as a `patchbay serve` child that is killed with SIGKILL mid-export), the VICIdial
//! simulator over HTTP, and PostgreSQL. Nothing of ours is mocked.

mod common;

use std::{
    collections::HashSet,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{ADMIN_TOKEN, DEMO_TOKEN, ServeProcess, TestApp, authed, bad_fields, reason, tenant_yaml};
use patchbay::{
    dialer::vicidial::sim::{Permissions, VicidialSim},
    proto::v1::{
        self as pb, dialer_service_client::DialerServiceClient, export_leads_request::Part, export_target::List,
    },
    sim::{Fault, FaultRule},
};
use tonic::{Code, Response, Status, transport::Channel};

fn demo_vicidial_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.d/demo-vicidial.yaml")).unwrap()
}

async fn demo_app() -> TestApp {
    TestApp::builder().file("demo-vicidial.yaml", demo_vicidial_yaml()).spawn().await
}

fn sim(app: &TestApp) -> Arc<VicidialSim> {
    app.sims.get::<VicidialSim>().expect("the demo-vicidial tenant starts the VICIdial simulator")
}

/// A tenant `acme` (token `acme-token`) on the VICIdial at `api_url`.
fn acme_on(api_url: &str, password: &str) -> String {
    format!(
        "{}triggers:\n  dialer:\n    provider: vicidial\n    api_url: {api_url}\n    source: test\n    \
         username: api\n    password: '{password}'\n",
        tenant_yaml("acme", "acme-token"),
    )
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

fn phone(i: usize) -> String {
    format!("555{i:07}")
}

fn leads(range: std::ops::Range<usize>) -> Vec<pb::Lead> {
    range.map(|i| pb::Lead { phone_number: phone(i), first_name: format!("Lead {i}"), ..Default::default() }).collect()
}

fn export_messages(tenant: &str, request_id: &str, target: List, leads: Vec<pb::Lead>) -> Vec<pb::ExportLeadsRequest> {
    let mut msgs = vec![pb::ExportLeadsRequest {
        tenant: tenant.into(),
        request_id: request_id.into(),
        part: Some(Part::Target(pb::ExportTarget { list: Some(target) })),
    }];
    for chunk in leads.chunks(500) {
        msgs.push(pb::ExportLeadsRequest {
            part: Some(Part::Batch(pb::LeadBatch { leads: chunk.to_vec() })),
            ..Default::default()
        });
    }
    msgs
}

/// DialerService as one tenant's CRM calls it.
#[derive(Clone)]
struct Crm {
    client: DialerServiceClient<Channel>,
    tenant: &'static str,
    token: &'static str,
}

impl Crm {
    fn of(channel: Channel, tenant: &'static str, token: &'static str) -> Self {
        Self { client: DialerServiceClient::new(channel), tenant, token }
    }

    fn demo(app: &TestApp) -> Self {
        Self::of(app.channel.clone(), "demo-vicidial", DEMO_TOKEN)
    }

    async fn create_agent(&mut self, agent: pb::Agent) -> Result<pb::AgentResponse, Status> {
        let req = pb::CreateAgentRequest { tenant: self.tenant.into(), agent: Some(agent), request_id: String::new() };
        self.client.create_agent(authed(req, self.token)).await.map(Response::into_inner)
    }

    async fn update_agent(&mut self, agent: pb::Agent) -> Result<pb::AgentResponse, Status> {
        let req = pb::UpdateAgentRequest { tenant: self.tenant.into(), agent: Some(agent), ..Default::default() };
        self.client.update_agent(authed(req, self.token)).await.map(Response::into_inner)
    }

    async fn delete_agent(&mut self, user: &str) -> Result<pb::DeleteAgentResponse, Status> {
        let req = pb::DeleteAgentRequest { tenant: self.tenant.into(), user: user.into(), request_id: String::new() };
        self.client.delete_agent(authed(req, self.token)).await.map(Response::into_inner)
    }

    async fn create_list(&mut self, list: pb::DialList) -> Result<pb::DialList, Status> {
        let req = pb::CreateListRequest { tenant: self.tenant.into(), list: Some(list), request_id: String::new() };
        self.client.create_list(authed(req, self.token)).await.map(Response::into_inner)
    }

    async fn active_list_ids(&mut self) -> Result<Vec<String>, Status> {
        let req = pb::ListActiveListsRequest { tenant: self.tenant.into(), ..Default::default() };
        let lists = self.client.list_active_lists(authed(req, self.token)).await?.into_inner().lists;
        Ok(lists.into_iter().map(|l| l.list_id).collect())
    }

    async fn status(&mut self) -> pb::DialerStatus {
        let req = pb::GetDialerStatusRequest { tenant: self.tenant.into() };
        self.client.get_dialer_status(authed(req, self.token)).await.unwrap().into_inner()
    }

    async fn export(
        &mut self,
        request_id: &str,
        target: List,
        leads: Vec<pb::Lead>,
    ) -> Result<pb::ExportLeadsResponse, Status> {
        let msgs = export_messages(self.tenant, request_id, target, leads);
        self.client.export_leads(authed(tokio_stream::iter(msgs), self.token)).await.map(Response::into_inner)
    }
}

fn existing(id: &str) -> List {
    List::ExistingListId(id.into())
}

fn dial_list(list_id: &str, name: &str, campaign_id: &str) -> pb::DialList {
    pb::DialList { list_id: list_id.into(), name: name.into(), campaign_id: campaign_id.into(), active: true }
}

/// Every lead of `answer` has a lead id and no phone of `list` is there twice.
fn assert_each_lead_once(sim: &VicidialSim, list: &str, answer: &pb::ExportLeadsResponse, n: usize) {
    let missing: Vec<_> = answer.results.iter().filter(|r| r.lead_id.is_empty()).take(5).collect();
    assert!(missing.is_empty(), "leads without a lead id: {missing:#?}");
    let others: Vec<_> = answer.results.iter().filter(|r| r.status() != pb::LeadStatus::Accepted).take(5).collect();
    assert_eq!(answer.accepted as usize, n, "{:?}: {others:#?}", (answer.rejected, answer.duplicates));
    let in_list = sim.leads_in(list);
    let phones: HashSet<&str> = in_list.iter().map(|l| l.phone_number.as_str()).collect();
    assert_eq!(in_list.len(), n, "the dialer holds each lead once");
    assert_eq!(phones.len(), n);
}

// ---- the README's examples, on stock VICIdial ----

#[tokio::test]
async fn the_readmes_dialer_examples_run_unchanged_against_the_demo_vicidial_tenant() {
    let app = demo_app().await;
    let mut crm = Crm::demo(&app);
    let created = crm.create_agent(agent("1000")).await.unwrap();
    assert!(created.vendor_message.contains("USER HAS BEEN ADDED"), "{}", created.vendor_message);
    assert!(!created.vendor_message.contains("9999"), "passwords never come back: {}", created.vendor_message);
    let again = crm.create_agent(agent("1000")).await.unwrap_err();
    assert_eq!((again.code(), reason(&again).as_str()), (Code::AlreadyExists, "AGENT_ALREADY_EXISTS"));

    let update = pb::Agent {
        user: "1000".into(),
        full_name: "Renamed Person".into(),
        active: Some(false),
        ..Default::default()
    };
    crm.update_agent(update).await.unwrap();
    let stored = sim(&app).user("1000").unwrap();
    assert_eq!((stored.full_name.as_str(), stored.active), ("Renamed Person", false));

    crm.create_list(dial_list("1101", "Test API list", "TESTCAMP")).await.unwrap();
    let ids = crm.active_list_ids().await.unwrap();
    for id in ["1101", "20042018", "26042018", "6547"] {
        assert!(ids.contains(&id.to_owned()), "{id} in {ids:?}");
    }
    assert!(!ids.contains(&"3001".to_owned()), "an inactive list is not listed: {ids:?}");

    let readme_leads = vec![
        pb::Lead { phone_number: "+1 (555) 010-0199".into(), first_name: "Ann".into(), ..Default::default() },
        pb::Lead { phone_number: "12-34".into(), ..Default::default() },
    ];
    let first = crm.export("export-1", existing("20042018"), readme_leads.clone()).await.unwrap();
    assert_eq!((first.accepted, first.rejected), (1, 1));
    assert!(!first.results[0].lead_id.is_empty());
    assert!(first.results[1].error.contains("phone_number must have 6-16 digits"), "{:?}", first.results[1]);
    let replay = crm.export("export-1", existing("20042018"), readme_leads).await.unwrap();
    assert_eq!(replay, first, "the same answer again");
    assert_eq!(sim(&app).lead_count("20042018"), 1, "no lead added twice");

    let spring = List::NewList(dial_list("2024", "Spring - promo", "SALES"));
    let lead = pb::Lead {
        phone_number: "5550100200".into(),
        first_name: "Bob".into(),
        city: "Ahmedabad".into(),
        ..Default::default()
    };
    let second = crm.export("export-2", spring, vec![lead]).await.unwrap();
    assert_eq!(second.accepted, 1);
    assert_eq!(sim(&app).list("2024").unwrap().campaign_id, "SALES");
    assert!(crm.active_list_ids().await.unwrap().contains(&"2024".to_owned()), "an exported-to list is known");
}

// ---- DeleteAgent ----

#[tokio::test]
async fn delete_agent_deletes_on_vicidial_and_is_unimplemented_on_elision() {
    let app = TestApp::builder().demo().file("demo-vicidial.yaml", demo_vicidial_yaml()).spawn().await;
    let mut crm = Crm::demo(&app);
    crm.create_agent(agent("2000")).await.unwrap();
    let deleted = crm.delete_agent("2000").await.unwrap();
    assert!(deleted.vendor_message.contains("USER HAS BEEN DELETED"), "{}", deleted.vendor_message);
    assert!(sim(&app).user("2000").is_none());
    let gone = crm.delete_agent("2000").await.unwrap_err();
    assert_eq!((gone.code(), reason(&gone).as_str()), (Code::NotFound, "AGENT_NOT_FOUND"));

    let mut elision = Crm::of(app.channel.clone(), "demo", DEMO_TOKEN);
    let e = elision.delete_agent("2000").await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::Unimplemented, "NOT_SUPPORTED_BY_PROVIDER"));
    assert!(e.message().contains("deleting an agent is not supported"), "{}", e.message());
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_is_sent_again_and_succeeds() {
    let app = demo_app().await;
    let mut crm = Crm::demo(&app);
    crm.create_agent(agent("2001")).await.unwrap();
    sim(&app).faults_after().plan(FaultRule::new(Fault::Status(502)).matching("update_user").times(1));
    let deleted = crm.delete_agent("2001").await.unwrap();
    assert!(deleted.vendor_message.contains("is gone"), "{}", deleted.vendor_message);
    assert!(sim(&app).user("2001").is_none());
}

#[tokio::test]
async fn delete_agent_without_the_delete_permission_is_the_tenants_problem() {
    let app = demo_app().await;
    let mut crm = Crm::demo(&app);
    crm.create_agent(agent("2002")).await.unwrap();
    sim(&app).set_permissions("api", Permissions { delete_users: false, ..Permissions::all() });
    let e = crm.delete_agent("2002").await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::FailedPrecondition, "VENDOR_PERMISSION_DENIED"));
    assert!(sim(&app).user("2002").is_some());
}

// ---- field rules and answer lines ----

#[tokio::test]
async fn values_stock_vicidial_would_strip_are_refused_naming_the_field() {
    let app = demo_app().await;
    let mut crm = Crm::demo(&app);
    let a = pb::Agent { full_name: "O'Brien, Jr.".into(), ..agent("3000") };
    let e = crm.create_agent(a).await.unwrap_err();
    assert_eq!(bad_fields(&e), ["agent.full_name"]);
    assert!(sim(&app).user("3000").is_none(), "nothing sent");
    // The source's lengths: a 1-character password passes Elision's document, not add_user.
    let e = crm.create_agent(pb::Agent { password: "9".into(), ..agent("3001") }).await.unwrap_err();
    assert_eq!(bad_fields(&e), ["agent.password"]);
    // A 2-character list name passes the source's add_list (Elision's document wants 6).
    crm.create_list(dial_list("1102", "Q4", "TESTCAMP")).await.unwrap();

    let answer = crm
        .export(
            "strip-1",
            existing("20042018"),
            vec![
                pb::Lead { phone_number: "5551230001".into(), first_name: "José".into(), ..Default::default() },
                pb::Lead { phone_number: "5551230002".into(), email: "a+b@example.com".into(), ..Default::default() },
                pb::Lead {
                    phone_number: "5551230003".into(),
                    first_name: "Ann-Marie O'Neil".into(),
                    ..Default::default()
                },
            ],
        )
        .await
        .unwrap();
    assert!(answer.results[0].error.contains("first_name may hold only"), "{:?}", answer.results[0]);
    assert!(answer.results[1].error.contains("email may hold only"), "{:?}", answer.results[1]);
    assert_eq!(answer.results[2].status(), pb::LeadStatus::Accepted);
    assert_eq!(sim(&app).lead_count("20042018"), 1);
}

#[tokio::test]
async fn the_sources_answer_lines_map_to_the_same_reasons_as_elisions() {
    let app = demo_app().await;
    let mut crm = Crm::demo(&app);
    let e = crm.create_agent(pb::Agent { group: "NOPE".into(), ..agent("4000") }).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::FailedPrecondition, "USER_GROUP_NOT_FOUND"));
    let e = crm
        .update_agent(pb::Agent { user: "ghost".into(), full_name: "X".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::NotFound, "AGENT_NOT_FOUND"));
    let e = crm.create_list(dial_list("1103", "Test API list", "NOCAMP")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::FailedPrecondition, "CAMPAIGN_NOT_FOUND"));
    assert_eq!(sim(&app).calls().get("add_list"), 0, "campaigns_list is asked first; no add_list is sent");
    crm.create_list(dial_list("1104", "Test API list", "TESTCAMP")).await.unwrap();
    let e = crm.create_list(dial_list("1104", "Test API list", "TESTCAMP")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::AlreadyExists, "LIST_ALREADY_EXISTS"));
    sim(&app).set_permissions("api", Permissions { modify_users: false, ..Permissions::all() });
    let e = crm.create_agent(agent("4001")).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::FailedPrecondition, "VENDOR_PERMISSION_DENIED"));
}

// ---- exports: exactly once ----

#[tokio::test]
async fn two_crm_leads_with_one_phone_end_as_one_lead_and_a_duplicate_naming_it() {
    let app = demo_app().await;
    let mut crm = Crm::demo(&app);
    let twice = vec![
        pb::Lead { phone_number: "5557770001".into(), first_name: "First".into(), ..Default::default() },
        pb::Lead { phone_number: "555-777-0001".into(), first_name: "Second".into(), ..Default::default() },
    ];
    let answer = crm.export("dup-1", existing("6547"), twice).await.unwrap();
    assert_eq!((answer.accepted, answer.duplicates, answer.rejected), (1, 1, 0), "{answer:#?}");
    let (a, b) = (&answer.results[0], &answer.results[1]);
    let (added, dup) = if a.status() == pb::LeadStatus::Accepted { (a, b) } else { (b, a) };
    assert_eq!(dup.status(), pb::LeadStatus::Duplicate);
    assert_eq!(dup.lead_id, added.lead_id, "the duplicate names the lead that holds the number");
    assert!(dup.error.contains("already in list 6547"), "{}", dup.error);
    assert_eq!(sim(&app).lead_count("6547"), 1);
}

#[tokio::test]
async fn an_export_of_10000_leads_with_lost_and_refused_answers_adds_every_lead_exactly_once() {
    let app = demo_app().await;
    let sim = sim(&app);
    // 2% refused before the dialer ran them (503), 5% answered 502 after the lead was added.
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("add_lead").every(50));
    sim.faults_after().plan(FaultRule::new(Fault::Status(502)).matching("add_lead").every(20));
    let mut crm = Crm::demo(&app);
    let n = 10_000;
    let answer =
        crm.export("big-1", List::NewList(dial_list("7001", "Big export", "TESTCAMP")), leads(0..n)).await.unwrap();
    assert_each_lead_once(&sim, "7001", &answer, n);
    assert!(sim.calls().get("add_lead") as usize > n + n / 20, "lost answers were resent");
    // A replay sends nothing and answers the same.
    let before = sim.calls().get("add_lead");
    let replay =
        crm.export("big-1", List::NewList(dial_list("7001", "Big export", "TESTCAMP")), leads(0..n)).await.unwrap();
    assert_eq!(replay, answer);
    assert_eq!(sim.calls().get("add_lead"), before);
}

// ---- kill -9 mid-export ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_mid_export_a_replay_adds_nothing_twice_and_loses_nothing() {
    let sim = VicidialSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    sim.faults().set_latency(Duration::from_millis(2));
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("add_lead").every(50));
    sim.faults_after().plan(FaultRule::new(Fault::Status(502)).matching("add_lead").every(20));
    let providers = tempfile::tempdir().unwrap();
    std::fs::write(providers.path().join("acme.yaml"), acme_on(&sim.url(), "1234")).unwrap();
    let database_url = common::fresh_database().await;
    let n = 10_000;
    let target = || List::NewList(dial_list("7002", "Crash export", "TESTCAMP"));

    let dir = providers.path().to_owned();
    let url = database_url.clone();
    let server = tokio::task::spawn_blocking(move || ServeProcess::start(&dir, &url)).await.unwrap();
    let channel = Channel::from_shared(server.grpc.clone()).unwrap().connect().await.unwrap();
    let mut crm = Crm::of(channel, "acme", "acme-token");
    let cut = tokio::spawn(async move { crm.export("crash-1", target(), leads(0..n)).await });
    // Kill it once a third of the leads are in.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sim.lead_count("7002") < n / 3 {
        assert!(Instant::now() < deadline, "the export did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::spawn_blocking(move || server.kill9()).await.unwrap();
    assert!(cut.await.unwrap().is_err(), "the cut-off stream fails");
    let after_kill = sim.lead_count("7002");
    assert!(after_kill < n, "killed mid-export ({after_kill} leads in)");

    let dir = providers.path().to_owned();
    let server = tokio::task::spawn_blocking(move || ServeProcess::start(&dir, &database_url)).await.unwrap();
    let channel = Channel::from_shared(server.grpc.clone()).unwrap().connect().await.unwrap();
    let mut crm = Crm::of(channel, "acme", "acme-token");
    // The dead process's lease is taken over at once, not after it runs out.
    let started = Instant::now();
    let answer = crm.export("crash-1", target(), leads(0..n)).await.unwrap();
    assert_each_lead_once(&sim, "7002", &answer, n);
    assert!(started.elapsed() < Duration::from_secs(50), "{:?}", started.elapsed());
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
}

// ---- the lockout ----

#[tokio::test]
async fn after_one_refused_login_nothing_reaches_the_dialer_until_an_operator_reloads() {
    let sim = VicidialSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    let app = TestApp::builder().file("acme.yaml", acme_on(&sim.url(), "wrongpass")).spawn().await;
    let mut crm = Crm::of(app.channel.clone(), "acme", "acme-token");
    for _ in 0..15 {
        let e = crm.create_agent(agent("5000")).await.unwrap_err();
        assert_eq!((e.code(), reason(&e).as_str()), (Code::FailedPrecondition, "VENDOR_AUTH_FAILED"));
        assert!(e.message().contains("until its tenant file changes or an operator reloads"), "{}", e.message());
        assert!(!e.message().contains("wrongpass"), "{}", e.message());
    }
    assert_eq!(sim.failed_logins("api"), 1, "one refused login, then nothing sent");
    assert!(!sim.is_locked("api"));

    let status = crm.status().await;
    assert_eq!((status.login(), status.reachability()), (pb::LoginState::Refused, pb::Reachability::Reachable));
    assert!(!status.version.is_empty(), "{status:?}");
    assert_eq!(sim.failed_logins("api"), 1, "version needs no login");

    // The dialer's admin fixes the password; an operator reloads.
    sim.set_password("api", "wrongpass");
    let mut registry = app.registry_client();
    registry.reload_config(authed(pb::ReloadConfigRequest {}, ADMIN_TOKEN)).await.unwrap();
    crm.create_agent(agent("5000")).await.unwrap();
    assert_eq!(crm.status().await.login(), pb::LoginState::Working);
}
