//! The simulator over real HTTP, as a client sees it: answer lines, state changes, faults.

use std::time::{Duration, Instant};

use super::*;
use crate::sim::{Fault, FaultRule};

fn sim() -> VicidialSim {
    VicidialSim::start(([127, 0, 0, 1], 0).into()).unwrap()
}

/// POSTs a form as `api` / `1234` from source `test`; `pairs` come later, so they win.
async fn call(sim: &VicidialSim, pairs: &[(&str, &str)]) -> String {
    let mut form = vec![("user", "api"), ("pass", "1234"), ("source", "test")];
    form.extend_from_slice(pairs);
    reqwest::Client::new().post(sim.url()).form(&form).send().await.unwrap().text().await.unwrap()
}

async fn get(sim: &VicidialSim, query: &str) -> reqwest::Response {
    reqwest::get(format!("{}?{query}", sim.url())).await.unwrap()
}

fn lead(phone: &'static str, list: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![("function", "add_lead"), ("phone_number", phone), ("list_id", list)]
}

#[tokio::test]
async fn version_needs_no_login_and_is_counted() {
    let sim = sim();
    let resp = get(&sim, "function=version").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("VERSION: 2.14-194|BUILD: 241004-1518|DATE: "), "{body}");
    assert!(body.ends_with("|DST: 0|TZ: -5.00|TZNOW: -5.00|\n"), "{body}");
    assert_eq!(sim.calls().get("version"), 1);
    assert_eq!(sim.failed_logins("api"), 0);
}

#[tokio::test]
async fn a_bad_login_echoes_the_password_and_counts_a_failure() {
    let sim = sim();
    let body = call(&sim, &[("function", "campaigns_list"), ("pass", "wrong")]).await;
    assert_eq!(body, "ERROR: Login incorrect, please try again: |api|wrong|BAD|\n");
    assert_eq!(sim.failed_logins("api"), 1);
    let ghost = call(&sim, &[("function", "campaigns_list"), ("user", "ghost")]).await;
    assert_eq!(ghost, "ERROR: Login incorrect, please try again: |ghost|1234|BAD|\n");
}

#[tokio::test]
async fn the_tenth_failure_locks_and_then_even_the_right_password_gets_lock() {
    let sim = sim();
    for _ in 0..LOCKOUT_AFTER {
        let body = call(&sim, &[("function", "campaigns_list"), ("pass", "wrong")]).await;
        assert!(body.ends_with("|BAD|\n"), "{body}");
    }
    assert!(sim.is_locked("api"));
    let locked = call(&sim, &[("function", "campaigns_list")]).await;
    assert_eq!(locked, "ERROR: Too many login attempts, try again in 15 minutes: |api|LOCK|\n");
    sim.unlock("api");
    assert!(call(&sim, &[("function", "campaigns_list")]).await.starts_with("NIKHIL|"));
}

#[tokio::test]
async fn a_good_login_resets_the_failure_count() {
    let sim = sim();
    for _ in 0..3 {
        call(&sim, &[("function", "campaigns_list"), ("pass", "nope")]).await;
    }
    assert_eq!(sim.failed_logins("api"), 3);
    call(&sim, &[("function", "campaigns_list")]).await;
    assert_eq!(sim.failed_logins("api"), 0);
}

#[tokio::test]
async fn passwords_compare_after_stripping_so_p_at_ss_bang_is_pss() {
    let sim = sim();
    sim.set_password("api", "pss");
    let body = call(&sim, &[("function", "campaigns_list"), ("pass", "p@ss!")]).await;
    assert!(body.starts_with("NIKHIL|"), "{body}");
    sim.set_password("api", "p@ss!");
    let never = call(&sim, &[("function", "campaigns_list"), ("pass", "p@ss!")]).await;
    assert_eq!(never, "ERROR: Login incorrect, please try again: |api|pss|BAD|\n");
}

#[tokio::test]
async fn a_source_under_two_characters_answers_two_lines() {
    let sim = sim();
    let body = call(&sim, &[("function", "add_lead"), ("source", "x!")]).await;
    assert_eq!(body, "ERROR: Invalid Source - x\nERROR: Invalid Source: |x|\n");
}

#[tokio::test]
async fn an_unknown_function_after_a_good_login_is_no_function_specified() {
    let sim = sim();
    assert_eq!(call(&sim, &[("function", "made_up")]).await, "ERROR: NO FUNCTION SPECIFIED\n");
    assert_eq!(sim.calls().get("(other)"), 1);
    let teapot = get(&sim, "function=coffee").await;
    assert_eq!(teapot.status(), 418);
}

#[tokio::test]
async fn each_function_answers_its_own_permission_line() {
    let sim = sim();
    let none = Permissions { agent_api_access: true, ..Permissions::default() };
    sim.add_api_user("noperm", "pw", 8, none);
    let as_noperm = |f: &'static str| vec![("function", f), ("user", "noperm"), ("pass", "pw")];
    let cases = [
        ("add_user", "ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS: |noperm|0\n"),
        ("update_user", "ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE USERS: |noperm|0\n"),
        ("user_details", "ERROR: user_details USER DOES NOT HAVE PERMISSION TO GET USER DETAILS: |noperm|0|\n"),
        ("campaigns_list", "ERROR: campaigns_list USER DOES NOT HAVE PERMISSION TO GET CAMPAIGN INFO: |noperm|0|\n"),
        ("add_list", "ERROR: add_list USER DOES NOT HAVE PERMISSION TO ADD LISTS: |noperm|0\n"),
        ("list_info", "ERROR: list_info USER DOES NOT HAVE PERMISSION TO MODIFY LISTS: |noperm|0\n"),
        ("add_lead", "ERROR: add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM: |noperm|0|\n"),
        ("add_dnc_phone", "ERROR: add_dnc_phone USER DOES NOT HAVE PERMISSION TO ADD DNC NUMBERS: |noperm|0\n"),
    ];
    for (function, line) in cases {
        assert_eq!(call(&sim, &as_noperm(function)).await, line, "{function}");
    }
}

#[tokio::test]
async fn allowed_functions_and_modify_leads_five_refuse_before_the_fields() {
    let sim = sim();
    let limited = Permissions { allowed_functions: Some(vec!["add_lead".into()]), ..Permissions::all() };
    sim.add_api_user("limited", "pw", 9, limited);
    let body = call(&sim, &[("function", "add_user"), ("user", "limited"), ("pass", "pw")]).await;
    assert_eq!(body, "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |limited|add_user|\n");
    sim.set_permissions("limited", Permissions { modify_leads: 5, ..Permissions::all() });
    let leads = call(&sim, &[&lead("7275551212", "6547")[..], &[("user", "limited"), ("pass", "pw")]].concat()).await;
    assert_eq!(leads, "ERROR: add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM: |limited|0|\n");
}

fn new_agent() -> Vec<(&'static str, &'static str)> {
    vec![
        ("function", "add_user"),
        ("agent_user", "newagent"),
        ("agent_pass", "secret9"),
        ("agent_user_level", "1"),
        ("agent_full_name", "New Agent"),
        ("agent_user_group", "AGENTS"),
    ]
}

#[tokio::test]
async fn add_user_echoes_the_password_and_a_second_add_answers_already_exists() {
    let sim = sim();
    let ok = call(&sim, &new_agent()).await;
    assert_eq!(ok, "SUCCESS: add_user USER HAS BEEN ADDED - api|newagent|secret9|1|New Agent|AGENTS\n");
    assert_eq!(sim.user("newagent").unwrap().full_name, "New Agent");
    let again = call(&sim, &[&new_agent()[..], &[("agent_user", "NEWAGENT")]].concat()).await;
    assert_eq!(again, "ERROR: add_user USER ALREADY EXISTS: |api|NEWAGENT\n");
    let short = call(&sim, &[&new_agent()[..], &[("agent_user", "a2"), ("agent_pass", "x")]].concat()).await;
    assert_eq!(short, "ERROR: add_user YOU MUST USE ALL REQUIRED FIELDS: |api|a2|x|1|New Agent|AGENTS\n");
    let group =
        call(&sim, &[&new_agent()[..], &[("agent_user", "other"), ("agent_user_group", "NOPE")]].concat()).await;
    assert_eq!(group, "ERROR: add_user USER GROUP DOES NOT EXIST: |api|NOPE\n");
}

#[tokio::test]
async fn a_level_8_api_user_cannot_add_a_level_8_user() {
    let sim = sim();
    sim.add_api_user("apiuser", "pw", 8, Permissions::all());
    let form = [&new_agent()[..], &[("user", "apiuser"), ("pass", "pw"), ("agent_user_level", "8")]].concat();
    let body = call(&sim, &form).await;
    assert_eq!(body, "ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS IN THIS USER LEVEL: |apiuser|8|8\n");
}

#[tokio::test]
async fn update_user_deletes_before_looking_at_fields_and_needs_delete_users() {
    let sim = sim();
    sim.add_agent("obrien1", 1, "AGENTS");
    let delete = [("function", "update_user"), ("agent_user", "obrien1"), ("delete_user", "Y"), ("email", "x")];
    sim.add_api_user("salesapi", "pw", 9, Permissions { delete_users: false, ..Permissions::all() });
    let refused = call(&sim, &[&delete[..], &[("user", "salesapi"), ("pass", "pw")]].concat()).await;
    assert_eq!(refused, "ERROR: update_user USER DOES NOT HAVE PERMISSION TO DELETE USERS: |salesapi|0\n");
    assert!(sim.user("obrien1").is_some());
    let deleted = call(&sim, &delete).await;
    assert_eq!(deleted, "SUCCESS: update_user USER HAS BEEN DELETED - api|obrien1|\n");
    assert!(sim.user("obrien1").is_none());
    let missing = call(&sim, &delete).await;
    assert_eq!(missing, "ERROR: update_user USER DOES NOT EXIST: |api|\n");
}

#[tokio::test]
async fn update_user_of_a_higher_user_is_refused_with_an_empty_line_after() {
    let sim = sim();
    sim.add_api_user("apiuser", "pw", 8, Permissions::all());
    sim.add_agent("boss", 9, "ADMIN");
    let form =
        [("function", "update_user"), ("agent_user", "boss"), ("active", "N"), ("user", "apiuser"), ("pass", "pw")];
    let body = call(&sim, &form).await;
    assert_eq!(body, "ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE THIS USER: |apiuser|boss|<=|8\n\n");
    assert!(sim.user("boss").unwrap().active);
}

#[tokio::test]
async fn add_list_then_list_info_shows_the_list() {
    let sim = sim();
    let add =
        [("function", "add_list"), ("list_id", "1234"), ("list_name", "CRM export 1"), ("campaign_id", "TESTCAMP")];
    let ok = call(&sim, &[&add[..], &[("active", "Y")]].concat()).await;
    assert_eq!(ok, "SUCCESS: add_list LIST HAS BEEN ADDED - api|1234|CRM export 1|TESTCAMP\n");
    assert_eq!(call(&sim, &add).await, "ERROR: add_list LIST ALREADY EXISTS: |api|1234\n");
    let camp = call(&sim, &[&add[..], &[("list_id", "1235"), ("campaign_id", "TESTCIMP")]].concat()).await;
    assert_eq!(camp, "ERROR: add_list CAMPAIGN DOES NOT EXIST: |api|TESTCIMP\n");
    let required = call(&sim, &[&add[..], &[("list_id", "1235"), ("list_name", "")]].concat()).await;
    assert_eq!(required, "ERROR: add_list YOU MUST USE ALL REQUIRED FIELDS: |api|1235||TESTCAMP\n");

    sim.add_lead("1234", "7275551212");
    let info = call(&sim, &[("function", "list_info"), ("list_id", "1234"), ("leads_counts", "Y")]).await;
    let fields: Vec<&str> = info.trim_end_matches('\n').split('|').collect();
    assert_eq!(fields[..4], ["1234", "CRM export 1", "TESTCAMP", "Y"]);
    assert_eq!(fields[5..], ["", "2099-12-31", "0", "1", "1", ""], "{info}");
    let missing = call(&sim, &[("function", "list_info"), ("list_id", "4444")]).await;
    assert_eq!(missing, "ERROR: list_info LIST DOES NOT EXIST: |api|4444\n");
    let letters = call(&sim, &[("function", "list_info"), ("list_id", "12ab")]).await;
    assert_eq!(letters, "ERROR: list_info LIST DOES NOT EXIST: |api|12ab\n");
}

#[tokio::test]
async fn campaigns_list_answers_a_row_per_campaign_or_no_viewable_campaigns() {
    let sim = sim();
    let all = call(&sim, &[("function", "campaigns_list")]).await;
    let ids: Vec<&str> = all.lines().map(|l| l.split('|').next().unwrap()).collect();
    assert_eq!(ids, ["NIKHIL", "SALES", "TESTCAMP", "TESTING"]);
    let one = call(&sim, &[("function", "campaigns_list"), ("campaign_id", "testcamp")]).await;
    assert_eq!(one, "TESTCAMP|Test Campaign|Y|---ALL---|RATIO|1|DOWN|NEW NA|60|9||\n");
    let none = call(&sim, &[("function", "campaigns_list"), ("campaign_id", "NOPE")]).await;
    assert_eq!(none, "ERROR: campaigns_list THIS USER HAS NO VIEWABLE CAMPAIGNS: api|\n");
}

#[tokio::test]
async fn add_lead_answers_the_lead_id_and_stores_the_stripped_fields() {
    let sim = sim();
    sim.add_list("1234", "CRM", "TESTCAMP", true);
    let form =
        [&lead("(727) 555-1212", "1234")[..], &[("first_name", "Mary+Ann!"), ("vendor_lead_code", "crm#42")]].concat();
    let body = call(&sim, &form).await;
    assert_eq!(body, "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275551212|1234|100001|-5.00|api\n");
    let leads = sim.leads_in("1234");
    assert_eq!(leads.len(), 1);
    assert_eq!((leads[0].lead_id, leads[0].phone_number.as_str()), (100001, "7275551212"));
    assert_eq!((leads[0].first_name.as_str(), leads[0].vendor_lead_code.as_str()), ("Mary Ann", "crm42"));
    let short = call(&sim, &lead("72755", "1234")).await;
    assert_eq!(short, "ERROR: add_lead INVALID PHONE NUMBER LENGTH - 72755|api\n");
}

#[tokio::test]
async fn a_resent_lead_under_duplist_answers_duplicate_with_the_first_lead_id() {
    let sim = sim();
    sim.add_list("1234", "CRM", "TESTCAMP", true);
    sim.add_lead("6547", "7275551212");
    let form = [&lead("7275551212", "1234")[..], &[("duplicate_check", "DUPLIST")]].concat();
    let first = call(&sim, &form).await;
    assert_eq!(first, "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275551212|1234|100002|-5.00|api\n");
    let again = call(&sim, &form).await;
    assert_eq!(again, "ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275551212|1234|100002\n");
    assert_eq!(sim.lead_count("1234"), 1);
}

#[tokio::test]
async fn list_exists_check_refuses_an_undefined_list() {
    let sim = sim();
    let body = call(&sim, &[&lead("7275556666", "8888")[..], &[("list_exists_check", "Y")]].concat()).await;
    assert_eq!(body, "ERROR: add_lead NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - 7275556666|8888\n");
    let unchecked = call(&sim, &lead("7275556666", "8888")).await;
    assert!(unchecked.starts_with("SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275556666|8888|"), "{unchecked}");
}

#[tokio::test]
async fn add_dnc_phone_then_add_lead_with_dnc_check_is_refused() {
    let sim = sim();
    let dnc = [("function", "add_dnc_phone"), ("phone_number", "7275559999"), ("campaign_id", "SYSTEM_INTERNAL")];
    let added = call(&sim, &dnc).await;
    assert_eq!(added, "SUCCESS: add_dnc_phone DNC NUMBER HAS BEEN ADDED - api|7275559999|SYSTEM_INTERNAL\n");
    assert_eq!(
        call(&sim, &dnc).await,
        "ERROR: add_dnc_phone DNC NUMBER ALREADY EXISTS: |api|7275559999|SYSTEM_INTERNAL\n"
    );
    let refused = call(&sim, &[&lead("7275559999", "6547")[..], &[("dnc_check", "Y")]].concat()).await;
    assert_eq!(refused, "ERROR: add_lead PHONE NUMBER IN DNC - 7275559999|api\n");
}

#[tokio::test]
async fn a_fault_after_add_lead_replaces_the_answer_but_the_lead_stays_added() {
    let sim = sim();
    sim.faults_after().plan(FaultRule::new(Fault::Status(500)).matching("add_lead 7275551212").times(1));
    let form = [("user", "api"), ("pass", "1234"), ("source", "test"), ("function", "add_lead")];
    let form = [&form[..], &[("phone_number", "7275551212"), ("list_id", "6547")]].concat();
    let resp = reqwest::Client::new().post(sim.url()).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(sim.lead_count("6547"), 1, "the call ran before the fault");
    assert_eq!(sim.calls().get("add_lead"), 1);
}

#[tokio::test]
async fn a_fault_before_add_lead_leaves_the_state_unchanged() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("add_lead").times(1));
    let resp = reqwest::Client::new()
        .post(sim.url())
        .form(&[
            ("user", "api"),
            ("pass", "1234"),
            ("source", "t1"),
            ("function", "add_lead"),
            ("phone_number", "7275551212"),
            ("list_id", "6547"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(sim.lead_count("6547"), 0);
    assert_eq!(sim.calls().get("add_lead"), 1, "faulted calls are counted");
}

#[tokio::test]
async fn the_query_string_wins_over_the_form_body() {
    let sim = sim();
    let resp = reqwest::Client::new()
        .post(format!("{}?function=campaigns_list&campaign_id=SALES", sim.url()))
        .form(&[
            ("user", "api"),
            ("pass", "1234"),
            ("source", "test"),
            ("function", "add_user"),
            ("campaign_id", "NIKHIL"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().starts_with("SALES|Sales Campaign|"));
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_refused_by_the_web_server() {
    let sim = sim();
    let big = "x".repeat(MAX_BODY_BYTES + 1);
    let resp = reqwest::Client::new()
        .post(sim.url())
        .form(&[("function", "add_lead"), ("comments", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn concurrent_calls_with_latency_overlap_instead_of_queueing() {
    let sim = sim();
    sim.faults().set_latency(Duration::from_millis(100));
    let started = Instant::now();
    let phones: Vec<String> = (0..20).map(|i| format!("72755500{i:02}")).collect();
    let sim = &sim;
    let calls = phones.iter().map(|phone| async move {
        call(sim, &[("function", "add_lead"), ("phone_number", phone), ("list_id", "6547")]).await
    });
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|a| a.starts_with("SUCCESS: add_lead")), "{answers:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(sim.lead_count("6547"), 20);
}
