use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use super::*;
use crate::{
    dialer::{
        elision::sim::{ElisionSim, Permissions},
        provider::LoginState,
    },
    sim::{Fault, FaultRule},
};

fn client(sim: &ElisionSim, pass: &str) -> ElisionClient {
    ElisionClient::new(
        crate::ops::vendor::VendorHttp::new(reqwest::Client::new(), Default::default(), PROVIDER, "test"),
        sim.url().parse().unwrap(),
        "test",
        "api".to_owned().into(),
        pass.to_owned().into(),
    )
    .with_read_retry(Backoff::new(Duration::from_millis(5), Duration::from_millis(20), 3))
}

fn sim() -> Arc<ElisionSim> {
    Arc::new(ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap())
}

fn agent(user: &str) -> Agent {
    Agent {
        user: user.into(),
        password: Some("9999".to_owned().into()),
        level: Some(1),
        full_name: Some("Testing Person".into()),
        group: Some("AGENTS".into()),
        ..Agent::default()
    }
}

#[tokio::test]
async fn create_agent_sends_a_form_body_and_scrubs_the_echoed_password() {
    let sim = sim();
    let ack = client(&sim, "1234").create_agent(&agent("1000")).await.unwrap();
    assert_eq!(ack.vendor_message, "SUCCESS: add_user USER HAS BEEN ADDED - api|1000|***|1|Testing Person|AGENTS");
    assert_eq!(sim.user("1000").unwrap().full_name, "Testing Person");
    assert_eq!(sim.calls().get("add_user"), 1);
}

#[tokio::test]
async fn a_refused_login_is_auth_failed_without_the_password() {
    let sim = sim();
    let err = client(&sim, "wrong-pass").create_agent(&agent("1000")).await.unwrap_err();
    let DialerError::Refused { kind, message, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*kind, Refusal::AuthFailed);
    assert!(!message.contains("wrong-pass"), "{message}");
    assert!(message.contains("Login incorrect"), "{message}");
}

#[tokio::test]
async fn after_a_refused_login_no_call_is_sent_until_an_operator_reloads() {
    let sim = sim();
    let reloads = Arc::new(AtomicU64::new(0));
    let bad = client(&sim, "nope").with_full_reloads(Arc::clone(&reloads));
    for _ in 0..12 {
        let err = bad.active_lists(&[]).await.unwrap_err();
        let DialerError::Refused { kind: Refusal::AuthFailed, message, .. } = &err else { panic!("{err:?}") };
        assert!(message.contains("sends no further call for this tenant until"), "{message}");
    }
    assert_eq!(sim.calls().get("active_lists"), 1, "one refused login, then nothing sent");
    assert!(!sim.is_locked("api"));
    assert_eq!(bad.status().await.login, LoginState::Refused);
    reloads.fetch_add(1, Ordering::Relaxed);
    bad.active_lists(&[]).await.unwrap_err();
    assert_eq!(sim.calls().get("active_lists"), 2, "an operator's reload lets one call try again");
}

#[tokio::test]
async fn an_api_user_locked_by_others_is_reported_as_locked() {
    let sim = sim();
    // Ten other integrations with the wrong password, each refused once.
    for _ in 0..10 {
        client(&sim, "nope").active_lists(&[]).await.unwrap_err();
    }
    assert!(sim.is_locked("api"));
    let err = client(&sim, "1234").active_lists(&[]).await.unwrap_err();
    let DialerError::Refused { kind, message, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*kind, Refusal::ApiUserLocked);
    assert!(message.contains("Too many login attempts"), "{message}");
    sim.unlock("api");
    assert!(client(&sim, "1234").active_lists(&[]).await.is_ok());
}

#[tokio::test]
async fn add_list_without_permission_never_echoes_the_api_password() {
    let sim = sim();
    sim.set_permissions("api", Permissions { modify_lists: false, ..Permissions::ALL });
    let list =
        DialList { list_id: "5001".into(), name: "Spring promo".into(), campaign_id: "TESTCAMP".into(), active: true };
    let err = client(&sim, "1234").create_list(&list).await.unwrap_err();
    let DialerError::Refused { kind, message, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*kind, Refusal::PermissionDenied);
    assert!(!message.contains("1234"), "{message}");
}

#[tokio::test]
async fn reads_are_retried_through_5xx_and_garbage() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("active_lists").times(1));
    sim.faults().plan(FaultRule::new(Fault::Garbage).matching("active_lists").times(1));
    let lists = client(&sim, "1234").active_lists(&[]).await.unwrap();
    assert!(lists.iter().any(|l| l.list_id == "20042018" && l.name == "20042018-hardik"));
    assert_eq!(sim.calls().get("active_lists"), 3);
}

#[tokio::test]
async fn reads_give_up_after_their_attempts_as_unavailable() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("active_lists"));
    let err = client(&sim, "1234").active_lists(&[]).await.unwrap_err();
    assert!(matches!(&err, DialerError::Unavailable { message, .. } if message.contains("HTTP 503")), "{err:?}");
    assert_eq!(sim.calls().get("active_lists"), 3);
    // Whatever the failure: a read changes nothing, so it ends as unavailable.
    sim.faults().clear();
    sim.faults().plan(FaultRule::new(Fault::Garbage).matching("active_lists"));
    let err = client(&sim, "1234").active_lists(&[]).await.unwrap_err();
    assert!(
        matches!(&err, DialerError::Unavailable { message, .. } if message.contains("could not be read")),
        "{err:?}"
    );
}

/// A fake dialer at `/api.php` that answers every call with this status and body.
fn fake_dialer(status: u16, body: impl Into<String>) -> crate::sim::SimServer {
    use axum::{Router, http::StatusCode, routing::any};
    let body: String = body.into();
    let status = StatusCode::from_u16(status).unwrap();
    let router = Router::new().route("/api.php", any(move || async move { (status, body) }));
    crate::sim::SimServer::start(router, ([127, 0, 0, 1], 0).into()).unwrap()
}

fn client_at(url: &str, pass: &str) -> ElisionClient {
    ElisionClient::new(
        crate::ops::vendor::VendorHttp::new(reqwest::Client::new(), Default::default(), PROVIDER, "test"),
        url.parse().unwrap(),
        "test",
        "api".to_owned().into(),
        pass.to_owned().into(),
    )
    .with_read_retry(Backoff::new(Duration::from_millis(5), Duration::from_millis(20), 3))
}

fn list() -> DialList {
    DialList { list_id: "5001".into(), name: "Spring promo".into(), campaign_id: "TESTCAMP".into(), active: true }
}

#[tokio::test]
async fn a_timeout_is_an_unknown_outcome_and_mutations_are_not_retried() {
    let sim = sim();
    sim.faults().set_hang_for(Duration::from_secs(5));
    sim.faults().plan(FaultRule::new(Fault::Hang).matching("add_user").times(1));
    let c = client(&sim, "1234").with_timeout(Duration::from_millis(200));
    let err = c.create_agent(&agent("1000")).await.unwrap_err();
    let DialerError::OutcomeUnknown { message, check, .. } = &err else { panic!("{err:?}") };
    assert!(message.contains("no answer from the dialer within"), "{message}");
    assert!(check.contains("AGENT_ALREADY_EXISTS") && check.contains("1000"), "{check}");
    assert!(!err.safe_to_resend());
    assert_eq!(sim.calls().get("add_user"), 1);
}

#[tokio::test]
async fn a_garbage_answer_to_a_mutation_is_an_unknown_outcome() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Garbage).matching("add_multi_lead").times(1));
    let lead = Lead { phone_number: "5550100".into(), ..Lead::default() };
    let err = client(&sim, "1234").add_leads("20042018", &[lead], false).await.unwrap_err();
    let DialerError::OutcomeUnknown { message, .. } = &err else { panic!("{err:?}") };
    assert!(message.contains("could not be read"), "{message}");
}

#[tokio::test]
async fn a_503_or_429_answer_to_a_batch_is_safe_to_resend() {
    let sim = sim();
    let lead = Lead { phone_number: "5550100".into(), ..Lead::default() };
    for status in [503, 429] {
        sim.faults().plan(FaultRule::new(Fault::Status(status)).matching("add_multi_lead").times(1));
        let err = client(&sim, "1234").add_leads("20042018", std::slice::from_ref(&lead), false).await.unwrap_err();
        assert!(err.safe_to_resend(), "{status}: {err:?}");
        assert!(matches!(&err, DialerError::Unavailable { message, .. } if message.contains(&status.to_string())));
    }
    assert_eq!(sim.lead_count("20042018"), 0);
}

#[tokio::test]
async fn a_500_502_or_504_answer_to_a_mutation_is_an_unknown_outcome_never_safe_to_resend() {
    let sim = sim();
    let lead = Lead { phone_number: "5550100".into(), ..Lead::default() };
    for status in [500, 502, 504] {
        sim.faults().plan(FaultRule::new(Fault::Status(status)).matching("add_multi_lead").times(1));
        let err = client(&sim, "1234").add_leads("20042018", std::slice::from_ref(&lead), false).await.unwrap_err();
        assert!(!err.safe_to_resend(), "{status}: {err:?}");
        let DialerError::OutcomeUnknown { message, check, .. } = &err else { panic!("{status}: {err:?}") };
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
        assert!(check.contains("list 20042018"), "{check}");
        sim.faults().plan(FaultRule::new(Fault::Status(status)).matching("add_list").times(1));
        let err = client(&sim, "1234").create_list(&list()).await.unwrap_err();
        assert!(matches!(&err, DialerError::OutcomeUnknown { check, .. } if check.contains("ListActiveLists")));
    }
    assert_eq!(sim.calls().get("add_multi_lead"), 3, "none of them sent twice");
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_and_safe_to_resend() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = client_at(&format!("http://127.0.0.1:{port}/api.php"), "1234");
    let err = c.create_agent(&agent("1000")).await.unwrap_err();
    assert!(err.safe_to_resend(), "{err:?}");
    assert!(matches!(&err, DialerError::Unavailable { message, .. } if message.contains("cannot connect")));
    let err = c.active_lists(&[]).await.unwrap_err();
    assert!(matches!(&err, DialerError::Unavailable { message, .. } if message.contains("3 attempts")), "{err:?}");
}

#[tokio::test]
async fn a_404_is_a_misconfigured_api_url_and_never_shows_credentials_or_the_query() {
    let sim = sim();
    let url = format!("http://someone:urlpw123@{}/wrong/elision_api.php?token=querysecret", sim.addr());
    let err = client_at(&url, "1234").create_list(&list()).await.unwrap_err();
    let DialerError::Refused { kind, message, vendor_code, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*kind, Refusal::Misconfigured("triggers.dialer.api_url"));
    assert_eq!(vendor_code, "HTTP 404");
    assert!(message.contains(&format!("http://{}/wrong/elision_api.php", sim.addr())), "{message}");
    assert!(!message.contains("urlpw123") && !message.contains("someone") && !message.contains("querysecret"));
    assert_eq!(sim.calls().total(), 0);
}

#[tokio::test]
async fn an_unreadable_answer_never_quotes_a_password_in_any_encoding() {
    // PHP's json_encode writes `"` as \" and `/` as \/: an exact-text scrubber misses both.
    let dialer = fake_dialer(200, r#"{"success":"pa\"ss\/w0rd!","message":"pa\"ss\/w0rd!"}"#);
    let c = client_at(&format!("{}/api.php", dialer.url()), "pa\"ss/w0rd!");
    let err = c.create_list(&list()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, DialerError::OutcomeUnknown { .. }), "{shown}");
    for form in ["pa\"ss", "pa\\\"ss", "ss/w0rd", "ss\\/w0rd", "w0rd"] {
        assert!(!shown.contains(form), "{form} in {shown}");
    }
}

#[tokio::test]
async fn an_answer_above_the_size_cap_is_not_read_and_counts_as_unreadable() {
    let huge =
        format!("SUCCESS: add_user USER HAS BEEN ADDED - api|1000\n{}", "NOTICE: x\n".repeat(MAX_ANSWER_BYTES / 10));
    let dialer = fake_dialer(200, huge);
    let c = client_at(&format!("{}/api.php", dialer.url()), "1234");
    let err = c.create_agent(&agent("1000")).await.unwrap_err();
    assert!(
        matches!(&err, DialerError::OutcomeUnknown { message, .. } if message.contains("larger than 4 MiB")),
        "{err:?}"
    );
    let just_fits = fake_dialer(200, format!("SUCCESS: add_user USER HAS BEEN ADDED - api|1000\n{}", " ".repeat(1024)));
    client_at(&format!("{}/api.php", just_fits.url()), "1234").create_agent(&agent("1000")).await.unwrap();
}

#[tokio::test]
async fn add_leads_gives_one_outcome_per_lead_in_order() {
    let sim = sim();
    let leads: Vec<Lead> = ["5550100", "12", "5550101"]
        .iter()
        .map(|p| Lead { phone_number: (*p).into(), first_name: "Ann".into(), ..Lead::default() })
        .collect();
    let outcomes = client(&sim, "1234").add_leads("20042018", &leads, false).await.unwrap();
    assert!(matches!(&outcomes[0], LeadOutcome::Accepted { lead_id } if !lead_id.is_empty()));
    assert!(matches!(&outcomes[1], LeadOutcome::Rejected { error } if error.contains("Invalid phone number")));
    assert!(matches!(&outcomes[2], LeadOutcome::Accepted { .. }));
    let stored = sim.leads_in("20042018");
    assert_eq!(stored.iter().map(|l| l.phone_number.as_str()).collect::<Vec<_>>(), ["5550100", "5550101"]);
    assert_eq!(stored[0].first_name, "Ann");
}

#[tokio::test]
async fn the_simulator_refuses_batches_above_the_limit_and_the_shape_stays_below_it() {
    let sim = sim();
    let c = client(&sim, "1234");
    let leads: Vec<Lead> = (0..=wire::MAX_LEADS_PER_CALL)
        .map(|i| Lead { phone_number: format!("555{i:07}"), ..Lead::default() })
        .collect();
    let err = c.add_leads("20042018", &leads, false).await.unwrap_err();
    assert!(matches!(err, DialerError::Refused { kind: Refusal::Other, .. }), "{err:?}");
    assert!(c.export_shape().max_leads_per_call <= wire::MAX_LEADS_PER_CALL);
    let huge = Lead { phone_number: "5550100".into(), first_name: "x".repeat(wire::MAX_BODY_BYTES), ..Lead::default() };
    assert_eq!(c.lead_wire_size(&huge), None);
}
