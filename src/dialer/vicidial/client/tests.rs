use super::*;
use crate::{
    dialer::{provider::LoginState, vicidial::sim::VicidialSim},
    sim::{Fault, FaultRule},
};

fn sim() -> VicidialSim {
    VicidialSim::start(([127, 0, 0, 1], 0).into()).unwrap()
}

fn client(sim: &VicidialSim, pass: &str) -> VicidialClient {
    VicidialClient::new(
        VendorHttp::new(reqwest::Client::new(), Default::default(), PROVIDER, "test"),
        sim.url().parse().unwrap(),
        "test",
        "api".to_owned().into(),
        pass.to_owned().into(),
    )
    .with_timeout(Duration::from_secs(2))
    .with_read_retry(Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2))
}

fn lead(phone: &str) -> Lead {
    Lead { phone_number: phone.into(), first_name: "Ann".into(), ..Lead::default() }
}

#[tokio::test]
async fn an_added_lead_answers_its_lead_id_and_a_second_one_with_its_phone_is_a_duplicate_naming_it() {
    let sim = sim();
    let c = client(&sim, "1234");
    let first = c.add_leads("6547", &[lead("5550001111")], false).await.unwrap();
    let [LeadOutcome::Accepted { lead_id }] = first.as_slice() else { panic!("{first:?}") };
    let second = c.add_leads("6547", &[lead("5550001111")], false).await.unwrap();
    assert_eq!(second, [LeadOutcome::Duplicate { lead_id: lead_id.clone() }]);
    // The same answer to a resend after a lost answer is the lost attempt's lead.
    let resent = c.add_leads("6547", &[lead("5550001111")], true).await.unwrap();
    assert_eq!(resent, [LeadOutcome::Accepted { lead_id: lead_id.clone() }]);
    assert_eq!(sim.lead_count("6547"), 1);
}

#[tokio::test]
async fn a_lost_add_lead_answer_is_an_unknown_outcome_that_names_the_resend() {
    let sim = sim();
    sim.faults_after().plan(FaultRule::new(Fault::Status(502)).matching("add_lead").times(1));
    let err = client(&sim, "1234").add_leads("6547", &[lead("5550002222")], false).await.unwrap_err();
    let DialerError::OutcomeUnknown { check, .. } = &err else { panic!("{err:?}") };
    assert!(check.contains("resent under DUPLIST"), "{check}");
    assert_eq!(sim.lead_count("6547"), 1, "the lead was added before the answer was lost");
}

#[tokio::test]
async fn a_lead_the_dialer_refuses_is_rejected_and_a_missing_list_refuses_it_too() {
    let sim = sim();
    let c = client(&sim, "1234");
    let out = c.add_leads("55555", &[lead("5550003333")], false).await.unwrap();
    assert!(matches!(&out[0], LeadOutcome::Rejected { error } if error.contains("NOT A DEFINED LIST ID")), "{out:?}");
    assert_eq!(sim.lead_count("999"), 0, "list_exists_check keeps it out of list 999");
}

#[tokio::test]
async fn lists_are_read_one_by_one_and_only_active_ones_are_answered() {
    let sim = sim();
    let c = client(&sim, "1234").with_known_lists(vec!["3001".into(), "6547".into()]);
    let lists = c.active_lists(&["20042018".into(), "4444".into(), "6547".into()]).await.unwrap();
    let ids: Vec<&str> = lists.iter().map(|l| l.list_id.as_str()).collect();
    assert_eq!(ids, ["20042018", "6547"], "3001 is inactive, 4444 does not exist; each id read once");
    assert_eq!(sim.calls().get("list_info"), 4);
    assert!(c.is_list_active("6547").await.unwrap());
    assert!(!c.is_list_active("3001").await.unwrap());
    assert!(!c.is_list_active("4444").await.unwrap());
}

#[tokio::test]
async fn version_probes_the_dialer_without_a_login() {
    let sim = sim();
    let status = client(&sim, "wrong").status().await;
    assert_eq!(status.reachable, Some(true), "{status:?}");
    assert!(!status.version.is_empty() && !status.build.is_empty(), "{status:?}");
    assert_eq!(status.login, LoginState::Unknown);
    assert_eq!(sim.failed_logins("api"), 0);
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("version"));
    let down = client(&sim, "1234").status().await;
    assert_eq!(down.reachable, Some(false), "{down:?}");
    assert!(down.message.contains("HTTP 503"), "{}", down.message);
}

#[tokio::test]
async fn after_a_refused_login_the_client_sends_nothing_more_and_never_locks_the_api_user() {
    let sim = sim();
    let c = client(&sim, "wrong");
    for _ in 0..20 {
        let err = c.create_agent(&Agent { user: "1000".into(), ..Agent::default() }).await.unwrap_err();
        assert!(matches!(err, DialerError::Refused { kind: Refusal::AuthFailed, .. }), "{err:?}");
    }
    assert_eq!(sim.failed_logins("api"), 1);
    assert!(!sim.is_locked("api"));
    assert_eq!(c.status().await.login, LoginState::Refused);
}

#[tokio::test]
async fn a_list_is_created_only_in_a_campaign_the_api_user_sees() {
    let sim = sim();
    let c = client(&sim, "1234");
    let list = DialList { list_id: "1101".into(), name: "Q4".into(), campaign_id: "NOPE".into(), active: true };
    let err = c.create_list(&list).await.unwrap_err();
    assert!(matches!(err, DialerError::Refused { kind: Refusal::CampaignNotFound, .. }), "{err:?}");
    assert_eq!(sim.calls().get("add_list"), 0);
    let ok = DialList { campaign_id: "testcamp".into(), ..list };
    c.create_list(&ok).await.unwrap();
    assert!(sim.list("1101").is_some());
}

#[test]
fn every_error_line_of_the_source_maps_to_the_reason_elision_gives_it() {
    use crate::ops::ApiError;
    let sim_free = VicidialClient::new(
        VendorHttp::new(reqwest::Client::new(), Default::default(), PROVIDER, "test"),
        "http://127.0.0.1:9/vicidial/non_agent_api.php".parse().unwrap(),
        "test",
        "apiuser".to_owned().into(),
        "secret9".to_owned().into(),
    );
    let scrub = sim_free.api.scrubber([]);
    let cases: &[(&str, Subject, &str, Option<&str>)] = &[
        (
            "ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS: |noperm|0",
            Subject::Agent,
            "VENDOR_PERMISSION_DENIED",
            None,
        ),
        (
            "ERROR: add_user YOU MUST USE ALL REQUIRED FIELDS: |apiuser|a2|x|1|A|AGENTS",
            Subject::Agent,
            "INVALID_FIELD",
            Some("agent"),
        ),
        (
            "ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS IN THIS USER LEVEL: |apiuser|8|8",
            Subject::Agent,
            "INVALID_FIELD",
            Some("agent.level"),
        ),
        ("ERROR: add_user USER GROUP DOES NOT EXIST: |apiuser|NOPE", Subject::Agent, "USER_GROUP_NOT_FOUND", None),
        ("ERROR: add_user USER ALREADY EXISTS: |apiuser|NEWAGENT", Subject::Agent, "AGENT_ALREADY_EXISTS", None),
        (
            "ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE USERS: |noperm|0",
            Subject::Agent,
            "VENDOR_PERMISSION_DENIED",
            None,
        ),
        ("ERROR: update_user USER DOES NOT EXIST: |apiuser|", Subject::Agent, "AGENT_NOT_FOUND", None),
        (
            "ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE THIS USER: |apiuser|boss|<=|8\n\n",
            Subject::Agent,
            "AGENT_LEVEL_TOO_HIGH",
            None,
        ),
        (
            "ERROR: update_user USER DOES NOT HAVE PERMISSION TO DELETE USERS: |salesapi|0",
            Subject::Agent,
            "VENDOR_PERMISSION_DENIED",
            None,
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID USER GROUP, THIS IS AN OPTIONAL FIELD: |apiuser|FAKEGROUP|0",
            Subject::Agent,
            "USER_GROUP_NOT_FOUND",
            None,
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID EMAIL, THIS IS AN OPTIONAL FIELD: |apiuser|a@b",
            Subject::Agent,
            "INVALID_FIELD",
            Some("agent.email"),
        ),
        (
            "ERROR: update_user ACTIVE MUST BE Y OR N, THIS IS AN OPTIONAL FIELD: |apiuser|YES",
            Subject::Agent,
            "INVALID_FIELD",
            Some("agent.active"),
        ),
        ("ERROR: update_user NO UPDATES DEFINED: |apiuser|", Subject::Agent, "VENDOR_REJECTED", None),
        (
            "ERROR: add_list USER DOES NOT HAVE PERMISSION TO ADD LISTS: |noperm|0",
            Subject::List,
            "VENDOR_PERMISSION_DENIED",
            None,
        ),
        (
            "ERROR: add_list YOU MUST USE ALL REQUIRED FIELDS: |apiuser|1235||TESTCAMP",
            Subject::List,
            "INVALID_FIELD",
            Some("list"),
        ),
        ("ERROR: add_list CAMPAIGN DOES NOT EXIST: |apiuser|TESTCIMP", Subject::List, "CAMPAIGN_NOT_FOUND", None),
        ("ERROR: add_list LIST ALREADY EXISTS: |apiuser|1234", Subject::List, "LIST_ALREADY_EXISTS", None),
        (
            "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |limited|add_user|",
            Subject::Agent,
            "VENDOR_PERMISSION_DENIED",
            None,
        ),
        ("ERROR: Invalid Source - x\nERROR: Invalid Source: |x|", Subject::Agent, "VENDOR_MISCONFIGURED", None),
        ("ERROR: Login incorrect, please try again: |apiuser|secret9|BAD|", Subject::Agent, "VENDOR_AUTH_FAILED", None),
        (
            "ERROR: Too many login attempts, try again in 15 minutes: |boss|LOCK|",
            Subject::Agent,
            "VENDOR_AUTH_FAILED",
            None,
        ),
    ];
    for (line, subject, reason, field) in cases {
        let Err(Failure::Refused(e)) = sim_free.ack(line, *subject, &scrub) else { panic!("{line}: not a refusal") };
        let err = ApiError::from(e);
        assert_eq!(err.reason, *reason, "{line}");
        assert_eq!(err.domain, wire::DOMAIN, "{line}");
        assert!(!err.message.contains("secret9"), "{line}: {}", err.message);
        if let Some(field) = field {
            assert_eq!(err.fields(), [*field], "{line}");
        }
    }
}

#[test]
fn add_lead_refusals_reject_the_lead_unless_they_stop_the_export() {
    let c = VicidialClient::new(
        VendorHttp::new(reqwest::Client::new(), Default::default(), PROVIDER, "test"),
        "http://127.0.0.1:9/vicidial/non_agent_api.php".parse().unwrap(),
        "test",
        "api".to_owned().into(),
        "secret9".to_owned().into(),
    );
    let scrub = c.api.scrubber([]);
    for line in [
        "ERROR: add_lead INVALID PHONE NUMBER LENGTH - 72755|apiuser",
        "ERROR: add_lead PHONE NUMBER IN DNC - 7275559999|apiuser",
        "ERROR: add_lead PHONE NUMBER IN CAMPAIGN DNC - 7275550000|TESTCAMP|apiuser",
        "ERROR: add_lead NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - 7275556666|8888",
        "ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM - 7275551212|2001|100001|1234",
    ] {
        let out = c.lead_outcome(line, false, &scrub).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        assert!(matches!(&out, LeadOutcome::Rejected { error } if error == line), "{line}: {out:?}");
    }
    for line in [
        "ERROR: add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM: |noperm|0|",
        "ERROR: add_lead NOT AN ALLOWED LIST ID - 7275551111|1101",
    ] {
        let Err(Failure::Refused(e)) = c.lead_outcome(line, false, &scrub) else {
            panic!("{line}: the export goes on")
        };
        assert!(e.is_tenant_problem(), "{line}: {e:?}");
    }
}
