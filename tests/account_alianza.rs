//! The Alianza client against the Alianza simulator, over real HTTP: sessions, retries, error
//! bodies, and the simulator's own documented rules.

use std::{sync::Arc, time::Duration};

use patchbay::{
    account::{
        AccountProvider,
        alianza::{
            AlianzaClient, AlianzaSim,
            client::{ClientConfig, CreateDefaults},
            sim::{SimAccount, SimCallingPlan, SimLine, SimUser, demo},
        },
        provider::{AccountType, DesiredStatus, DialingBehavior, NewAccount, ProviderError, Rejection, StatusChange},
    },
    ops::retry::Backoff,
    sim::{Fault, FaultRule},
};
use serde_json::json;

const PARTITION: &str = "p1";

/// The shared vendor-call layer, as the registry hands it to a tenant's client.
fn vendor_http() -> patchbay::ops::vendor::VendorHttp {
    patchbay::ops::vendor::VendorHttp::new(reqwest::Client::new(), Default::default(), "alianza", "acme")
}

fn sim() -> AlianzaSim {
    let sim = AlianzaSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    sim.add_login("crm@isp.example", "s3cret", PARTITION);
    sim.seed_demo(PARTITION);
    sim
}

fn config(sim: &AlianzaSim) -> ClientConfig {
    ClientConfig {
        base_url: sim.url(),
        partition_id: PARTITION.into(),
        username: "crm@isp.example".to_owned().into(),
        password: "s3cret".to_owned().into(),
        timeout: Duration::from_secs(2),
        read_backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50), 3),
        create_defaults: Some(CreateDefaults {
            time_zone: "US/Eastern".into(),
            regulatory_type: "RESIDENTIAL".into(),
            inbound_rate_plan_product_id: Some(demo::RATE_PLAN.into()),
            platform_type: None,
        }),
    }
}

fn client(sim: &AlianzaSim) -> AlianzaClient {
    AlianzaClient::new(vendor_http(), config(sim)).unwrap()
}

fn new_account(number: &str) -> NewAccount {
    NewAccount {
        number: number.into(),
        name: "New Customer".into(),
        account_type: AccountType::Advanced,
        billing_cycle_day: 12,
        dialing_behavior: DialingBehavior::DialNineTenDigit,
        extension_length: Some(4),
        status: DesiredStatus::Active,
    }
}

#[tokio::test]
async fn the_panel_has_users_plans_lines_with_display_names_and_dial_numbers() {
    let sim = sim();
    let panel = client(&sim).account_panel(demo::ACCOUNT).await.unwrap();
    assert_eq!(panel.account.number, demo::ACCOUNT);
    assert_eq!(panel.account.account_type, Some(AccountType::Advanced));
    assert_eq!(panel.account.billing_cycle_day, 15);
    assert_eq!(panel.product_plans, ["STANDARD", "ADVANCED"]);
    assert_eq!(panel.account.calling_plans[0].name, "Unlimited North America");
    assert_eq!(panel.account.calling_plans[0].seconds_remaining, 151_200);
    let lines = &panel.sip_lines;
    assert_eq!(lines.len(), 3);
    assert_eq!((lines[0].display_name.as_str(), lines[0].dial_number.as_str()), ("Jane Smith", "8015550100"));
    // The fax line has no user: the device name and the emergency number stand in.
    assert_eq!((lines[2].display_name.as_str(), lines[2].dial_number.as_str()), ("Fax line", "8015550109"));
    assert_eq!(lines[2].line_number, "2");
}

#[tokio::test]
async fn concurrent_calls_share_one_login_and_reuse_the_token() {
    let sim = sim();
    let client = client(&sim);
    let calls = (0..50).map(|_| client.account_panel(demo::ACCOUNT));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    for _ in 0..10 {
        client.sip_lines(demo::ACCOUNT).await.unwrap();
    }
    assert_eq!(sim.logins(), 1);
    assert_eq!(sim.calls().get("authorize"), 1);
    // Calling-plan names are cached per tenant.
    assert_eq!(sim.calls().get("callingplanproduct.list"), 1);
}

#[tokio::test]
async fn an_expired_token_means_exactly_one_new_login_even_for_concurrent_calls() {
    let sim = sim();
    let client = client(&sim);
    client.account_panel(demo::ACCOUNT).await.unwrap();
    sim.expire_tokens();
    let calls = (0..20).map(|_| client.account_panel(demo::ACCOUNT));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(sim.logins(), 2);
}

#[tokio::test]
async fn the_token_lifetime_slides_with_use() {
    // The simulator's clock is moved instead of sleeping: a slow machine cannot change the result.
    let sim = sim();
    let client = client(&sim);
    for _ in 0..3 {
        client.sip_lines(demo::ACCOUNT).await.unwrap();
        // Idle 7 of the token's 8 hours, then used again: it slides.
        sim.advance_clock(Duration::from_secs(7 * 3600));
    }
    client.sip_lines(demo::ACCOUNT).await.unwrap();
    assert_eq!(sim.logins(), 1, "used every 7 hours, an 8-hour token never expires, though 21 hours have passed");
    sim.advance_clock(Duration::from_secs(9 * 3600));
    client.sip_lines(demo::ACCOUNT).await.unwrap();
    assert_eq!(sim.logins(), 2, "idle for 9 hours, it expired: one new login");
}

#[tokio::test]
async fn reads_are_retried_through_transient_500s() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("/deviceline").times(2));
    let lines = client(&sim).sip_lines(demo::ACCOUNT).await.unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(sim.calls().get("deviceline.list"), 1, "the two failed attempts never reached the handler");
}

#[tokio::test]
async fn a_persistent_500_is_unavailable_after_bounded_retries() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("/user"));
    let err = client(&sim).account_panel(demo::ACCOUNT).await.unwrap_err();
    let ProviderError::Unavailable { fault, .. } = &err else { panic!("{err:?}") };
    assert_eq!((fault.code.as_str(), fault.http_status), ("HTTP_500", Some(500)));
    assert_eq!(sim.calls().get("user.list"), 0);
}

#[tokio::test]
async fn a_hanging_vendor_times_out() {
    let sim = sim();
    sim.faults().set_hang_for(Duration::from_secs(5));
    sim.faults().plan(FaultRule::new(Fault::Hang).matching("/account/"));
    let mut cfg = config(&sim);
    cfg.timeout = Duration::from_millis(300);
    let client = AlianzaClient::new(vendor_http(), cfg).unwrap();
    let err = client.account_panel(demo::ACCOUNT).await.unwrap_err();
    // Without the client's timeout the hang would end in the simulator's 504, not in TIMEOUT.
    assert!(matches!(&err, ProviderError::Unavailable { fault, .. } if fault.code == "TIMEOUT"), "{err:?}");
}

#[tokio::test]
async fn a_garbage_body_on_a_read_is_retried_then_a_bad_response_not_a_panic() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Garbage).matching("/deviceline").times(1));
    assert_eq!(client(&sim).sip_lines(demo::ACCOUNT).await.unwrap().len(), 3, "one garbage answer is retried");
    sim.faults().plan(FaultRule::new(Fault::Garbage).matching("/deviceline"));
    let err = client(&sim).sip_lines(demo::ACCOUNT).await.unwrap_err();
    assert!(matches!(&err, ProviderError::BadResponse { fault } if fault.code == "BAD_RESPONSE"), "{err:?}");
}

#[tokio::test]
async fn an_answer_larger_than_4_mib_is_never_buffered_and_is_unreadable() {
    let sim = sim();
    sim.seed_account(PARTITION, SimAccount::new("888000222", &"x".repeat(5 << 20)));
    let err = client(&sim).account_panel("888000222").await.unwrap_err();
    let ProviderError::BadResponse { fault } = &err else { panic!("{err:?}") };
    assert!(fault.message.contains("larger than 4 MiB"), "{fault:?}");
}

#[tokio::test]
async fn an_unreadable_answer_to_a_change_is_an_unknown_outcome() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Garbage).matching("POST /v2/partition").times(1));
    let err = client(&sim).create_account(&new_account("555000117")).await.unwrap_err();
    assert!(matches!(&err, ProviderError::OutcomeUnknown { fault, .. } if fault.code == "BAD_RESPONSE"), "{err:?}");
    assert_eq!(sim.calls().get("account.create"), 0, "sent once, never repeated");
}

#[tokio::test]
async fn a_missing_account_is_no_account() {
    let sim = sim();
    let err = client(&sim).account_panel("999999").await.unwrap_err();
    assert!(matches!(err, ProviderError::NoAccount { .. }), "{err:?}");
}

#[tokio::test]
async fn accounts_are_created_with_the_tenant_defaults() {
    let sim = sim();
    let created = client(&sim).create_account(&new_account("555000111")).await.unwrap();
    assert_eq!(created.number, "555000111");
    let stored = sim.account(PARTITION, "555000111").unwrap();
    assert_eq!(stored.time_zone, "US/Eastern");
    assert_eq!(stored.inbound_rate_plan_product_id, demo::RATE_PLAN);
    assert_eq!(stored.dialing_behavior_type, "DIAL_NINE_TEN_DIGIT");
    assert_eq!(stored.extension_length, Some(4));
}

#[tokio::test]
async fn vendor_validation_errors_carry_the_vendor_codes() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.create_defaults.as_mut().unwrap().time_zone = "Mars/Olympus".into();
    let client = AlianzaClient::new(vendor_http(), cfg).unwrap();
    let err = client.create_account(&new_account("555000112")).await.unwrap_err();
    let ProviderError::Rejected { kind: Rejection::Invalid, fault } = &err else { panic!("{err:?}") };
    assert_eq!((fault.code.as_str(), fault.http_status), ("InvalidTimeZone", Some(400)));
}

#[tokio::test]
async fn a_taken_account_number_is_already_exists() {
    let sim = sim();
    let err = client(&sim).create_account(&new_account(demo::ACCOUNT)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { kind: Rejection::AlreadyExists, .. }), "{err:?}");
}

#[tokio::test]
async fn a_plain_text_error_body_is_read_too() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Status(400)).matching("POST /v2/partition").times(1));
    let err = client(&sim).create_account(&new_account("555000113")).await.unwrap_err();
    let ProviderError::Rejected { fault, .. } = &err else { panic!("{err:?}") };
    assert_eq!(fault.code, "HTTP_400");
    assert!(fault.message.contains("simulated fault"), "{fault:?}");
}

#[tokio::test]
async fn mutations_are_never_retried_after_a_500_and_their_outcome_is_unknown() {
    let sim = sim();
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("POST /v2/partition").times(1));
    let err = client(&sim).create_account(&new_account("555000114")).await.unwrap_err();
    let ProviderError::OutcomeUnknown { fault, check, .. } = &err else { panic!("{err:?}") };
    assert_eq!(fault.http_status, Some(500));
    assert!(check.contains("GetAccountStatus"), "{check}");
    // A retry would have found the fault gone and created the account.
    assert!(sim.account(PARTITION, "555000114").is_none());
}

#[tokio::test]
async fn a_change_that_times_out_has_an_unknown_outcome() {
    let sim = sim();
    sim.faults().set_hang_for(Duration::from_secs(5));
    sim.faults().plan(FaultRule::new(Fault::Hang).matching("PATCH /v2/partition").times(1));
    let mut cfg = config(&sim);
    cfg.timeout = Duration::from_millis(300);
    let client = AlianzaClient::new(vendor_http(), cfg).unwrap();
    let err = client.set_status(demo::ACCOUNT, DesiredStatus::Disabled).await.unwrap_err();
    assert!(matches!(&err, ProviderError::OutcomeUnknown { fault, .. } if fault.code == "TIMEOUT"), "{err:?}");
    assert_eq!(sim.calls().get("account.update"), 0, "sent once, never repeated");
}

#[tokio::test]
async fn a_change_the_vendor_never_received_is_unavailable() {
    // Nothing listens on this port any more: the connection is refused, so nothing was sent.
    let gone = sim();
    let cfg = config(&gone);
    gone.stop().await;
    let err = AlianzaClient::new(vendor_http(), cfg).unwrap().create_account(&new_account("555000119")).await;
    let err = err.unwrap_err();
    assert!(matches!(&err, ProviderError::Unavailable { fault, .. } if fault.code == "CONNECT"), "{err:?}");
}

#[tokio::test]
async fn a_404_that_is_not_alianzas_own_is_a_misconfigured_url_for_logins_and_creates() {
    let sim = sim();
    // A base URL with a path the server does not have: its login answers a plain 404.
    let mut cfg = config(&sim);
    cfg.base_url = format!("{}/not-alianza", sim.url());
    let err = AlianzaClient::new(vendor_http(), cfg).unwrap().sip_lines(demo::ACCOUNT).await.unwrap_err();
    let ProviderError::VendorMisconfigured { fault, keys } = &err else { panic!("{err:?}") };
    assert_eq!((fault.http_status, *keys), (Some(404), "triggers.account.api_url"));
    // Creating needs nothing but the partition: any 404 there is a wrong URL or partition.
    sim.faults().plan(FaultRule::new(Fault::Status(404)).matching("POST /v2/partition").times(1));
    let err = client(&sim).create_account(&new_account("555000118")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::VendorMisconfigured { keys: "triggers.account.api_url, triggers.account.partition_id", .. }
        ),
        "{err:?}"
    );
    // Alianza's own 404 (EntityNotFound) still means "no such account".
    let err = client(&sim).sip_lines("999000999").await.unwrap_err();
    assert!(matches!(err, ProviderError::NoAccount { .. }), "{err:?}");
}

#[tokio::test]
async fn a_status_change_is_sent_once_and_skipped_when_already_set() {
    let sim = sim();
    let client = client(&sim);
    assert_eq!(client.set_status(demo::ACCOUNT, DesiredStatus::Disabled).await.unwrap(), StatusChange::Changed);
    assert_eq!(sim.account(PARTITION, demo::ACCOUNT).unwrap().status, "DISABLED");
    assert_eq!(client.set_status(demo::ACCOUNT, DesiredStatus::Disabled).await.unwrap(), StatusChange::AlreadySet);
    assert_eq!(sim.calls().get("account.update"), 1);
}

#[tokio::test]
async fn deleting_an_account_with_numbers_reads_them_first_and_names_them_without_sending_the_delete() {
    let sim = sim();
    let client = client(&sim);
    let err = client.delete_account(demo::ACCOUNT_WITH_NUMBERS).await.unwrap_err();
    let ProviderError::NumbersAssigned { numbers, .. } = &err else { panic!("{err:?}") };
    assert_eq!(numbers, &[demo::ASSIGNED_NUMBER]);
    assert_eq!(sim.calls().get("account.delete"), 0);
    assert_eq!(sim.calls().get("telephonenumber.list"), 1);
    sim.release_numbers(PARTITION, demo::ACCOUNT_WITH_NUMBERS);
    client.delete_account(demo::ACCOUNT_WITH_NUMBERS).await.unwrap();
    assert!(sim.account(PARTITION, demo::ACCOUNT_WITH_NUMBERS).is_none());
    let again = client.delete_account(demo::ACCOUNT_WITH_NUMBERS).await.unwrap_err();
    assert!(matches!(again, ProviderError::NoAccount { .. }), "gone is NoAccount: {again:?}");
}

#[tokio::test]
async fn any_400_of_the_delete_itself_is_a_refusal_carrying_the_vendors_message() {
    let sim = sim();
    let body = r#"{"status": 400, "messages": ["LifecycleEventInProgress"], "data": {}}"#;
    sim.faults().plan(FaultRule::new(Fault::Json(400, body)).matching("DELETE /v2/partition"));
    let err = client(&sim).delete_account(demo::ACCOUNT).await.unwrap_err();
    let ProviderError::Rejected { kind: Rejection::DeleteRefused, fault } = &err else { panic!("{err:?}") };
    assert_eq!((fault.http_status, fault.code.as_str()), (Some(400), "LifecycleEventInProgress"));
    assert!(sim.account(PARTITION, demo::ACCOUNT).is_some());
}

#[tokio::test]
async fn wrong_credentials_and_a_wrong_partition_are_told_apart() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.password = "wrong".to_owned().into();
    let err = AlianzaClient::new(vendor_http(), cfg).unwrap().sip_lines(demo::ACCOUNT).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Credentials { fault } if fault.code == "InvalidCredentials"), "{err:?}");
    let mut cfg = config(&sim);
    cfg.partition_id = "someone-else".into();
    let err = AlianzaClient::new(vendor_http(), cfg).unwrap().sip_lines(demo::ACCOUNT).await.unwrap_err();
    assert!(matches!(err, ProviderError::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn a_login_failure_is_shared_by_the_calls_waiting_for_it() {
    let sim = sim();
    // A slow vendor, so that every call arrives while the one login is under way.
    sim.faults().set_latency(Duration::from_millis(50));
    let mut cfg = config(&sim);
    cfg.password = "wrong".to_owned().into();
    let client = Arc::new(AlianzaClient::new(vendor_http(), cfg).unwrap());
    let calls = (0..10).map(|_| client.sip_lines(demo::ACCOUNT));
    for result in futures::future::join_all(calls).await {
        assert!(matches!(result, Err(ProviderError::Credentials { .. })));
    }
    assert_eq!(sim.calls().get("authorize"), 1);
}

#[tokio::test]
async fn the_simulator_enforces_the_documented_account_rules() {
    let sim = sim();
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}/v2/authorize", sim.url()))
        .json(&json!({"username": "crm@isp.example", "password": "s3cret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["authToken"].as_str().unwrap().to_owned();
    assert_eq!(login["partitionId"], PARTITION);
    let create = |body: serde_json::Value| {
        let req = http
            .post(format!("{}/v2/partition/{PARTITION}/account", sim.url()))
            .header("X-AUTH-TOKEN", &token)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let base = json!({
        "accountNumber": "777000111", "accountName": "Acme", "accountType": "SIMPLE", "billingCycleDay": 5,
        "dialingBehaviorType": "TEN_DIGIT", "timeZone": "US/Central", "regulatoryType": "COMMERCIAL",
        "inboundRatePlanProductId": demo::RATE_PLAN, "status": "ACTIVE"
    });
    let with = |changes: serde_json::Value| {
        let mut b = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let (status, body) = create(with(json!({"accountNumber": "12", "billingCycleDay": 29}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["messages"], json!(["InvalidAccountNumber", "InvalidBillingCycleDay"]));
    let (_, body) = create(with(json!({"dialingBehaviorType": "DIAL_NINE_TEN_DIGIT"}))).await;
    assert_eq!(body["messages"], json!(["InvalidDialingBehaviorType"]), "DIAL_NINE is ADVANCED-only");
    let (_, body) =
        create(with(json!({"accountType": "ADVANCED", "dialingBehaviorType": "DIAL_NINE_SEVEN_DIGIT"}))).await;
    assert_eq!(body["messages"], json!(["ExtensionLengthRequired"]));
    let (_, body) = create(with(json!({"accountType": "ADVANCED", "extensionLength": 7}))).await;
    assert_eq!(body["messages"], json!(["InvalidExtensionLength"]));
    let (status, body) = create(with(json!({"extensionLength": 4}))).await;
    assert_eq!(status, 200);
    assert!(body.get("extensionLength").is_none(), "a SIMPLE account ignores an extension length");
    let (_, body) = create(base.clone()).await;
    assert_eq!(body["messages"], json!(["AccountNumberInUse"]));
    // The spec's limits: names and numbers 3-256 characters, its 15 time zones, CPE1/CPE2 (and
    // the older V2_x) platforms; the inbound rate plan only when given.
    for (number, name, ok) in [
        ("777000120", "ab".to_owned(), false),
        ("777000121", "abc".to_owned(), true),
        ("777000122", "n".repeat(256), true),
        ("777000123", "n".repeat(257), false),
        ("77", "Acme".to_owned(), false),
        (&"7".repeat(256), "Acme".to_owned(), true),
    ] {
        let (status, _) = create(with(json!({"accountNumber": number, "accountName": name}))).await;
        assert_eq!(status == 200, ok, "number of {} and name of {} characters", number.len(), name.len());
    }
    let (_, body) = create(with(json!({"accountNumber": "777000130", "timeZone": "America/New_York"}))).await;
    assert_eq!(body["messages"], json!(["InvalidTimeZone"]));
    let (status, body) =
        create(with(json!({"accountNumber": "777000131", "platformType": "CPE2", "inboundRatePlanProductId": null})))
            .await;
    assert_eq!((status, body["platformType"].as_str()), (200, Some("CPE2")), "{body}");
    let (_, body) = create(with(json!({"accountNumber": "777000132", "platformType": "CPE9"}))).await;
    assert_eq!(body["messages"], json!(["InvalidPlatformType"]));

    // Device lines: SIP user names are unique platform-wide, MACs are 12 hex digits.
    let id = sim.account(PARTITION, demo::ACCOUNT).unwrap().id;
    let taken = sim.lines(PARTITION, demo::ACCOUNT)[0].sip_username.clone();
    let resp = http
        .post(format!("{}/v2/partition/{PARTITION}/account/{id}/deviceline", sim.url()))
        .header("X-AUTH-TOKEN", &token)
        .json(&json!({"sipUsername": taken, "macAddress": "XYZ"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["messages"],
        json!(["SipUsernameInUse", "InvalidMacAddress"])
    );
    let resp = http
        .post(format!("{}/v2/partition/{PARTITION}/account/{id}/deviceline", sim.url()))
        .header("X-AUTH-TOKEN", &token)
        .json(&json!({"sipUsername": "brand-new", "macAddress": "00AABBCCDDEE", "lineNumber": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // An expired token is refused with the vendor's code.
    sim.expire_tokens();
    let resp = http
        .get(format!("{}/v2/partition/{PARTITION}/callingplanproduct", sim.url()))
        .header("X-AUTH-TOKEN", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["messages"], json!(["ExpiredAuthToken"]));
}

#[tokio::test]
async fn seeded_lines_can_be_changed_and_removed() {
    let sim = sim();
    sim.seed_account(PARTITION, SimAccount::new("888000111", "Seeded"));
    sim.add_line(PARTITION, "888000111", SimLine::new("seeded-1", 1, "00AA00AA00AA"));
    assert!(sim.edit_line(PARTITION, "seeded-1", |l| l.sip_password = "changed".into()));
    assert_eq!(sim.lines(PARTITION, "888000111")[0].sip_password, "changed");
    assert!(sim.remove_line(PARTITION, "seeded-1"));
    assert!(!sim.remove_line(PARTITION, "seeded-1"));
    assert!(sim.lines(PARTITION, "888000111").is_empty());
}

#[tokio::test]
async fn the_simulator_refuses_query_parameters_the_spec_does_not_declare() {
    let sim = sim();
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}/v2/authorize", sim.url()))
        .json(&json!({"username": "crm@isp.example", "password": "s3cret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["authToken"].as_str().unwrap();
    assert_eq!(login["userType"], "ManagementUser", "one of the spec's five user types");
    let id = sim.account(PARTITION, demo::ACCOUNT).unwrap().id;
    let get = |query: &str| {
        let req = http
            .get(format!("{}/v2/partition/{PARTITION}/account/{id}/{query}", sim.url()))
            .header("X-AUTH-TOKEN", token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("user?limitedData=true").await, 200);
    assert_eq!(get("user?limitedData=yes").await, 400);
    assert_eq!(get("user?accountIdType=AccountNumber").await, 400);
    assert_eq!(get("deviceline?filterType=ACCOUNT&filter=x").await, 200);
    assert_eq!(get("telephonenumber?page=2").await, 400);
}

#[tokio::test]
async fn an_account_of_1001_users_is_read_whole() {
    let sim = sim();
    sim.seed_account(PARTITION, SimAccount::new("900000001", "Big Office"));
    let mut last = String::new();
    for i in 0..1001 {
        last = sim.add_user(PARTITION, "900000001", SimUser::new("User", &format!("N{i:04}"), "STANDARD", ""));
    }
    let mut line = SimLine::new("big-last", 1, "00BB00BB0001");
    line.user_id = Some(last);
    sim.add_line(PARTITION, "900000001", line);
    let panel = client(&sim).account_panel("900000001").await.unwrap();
    // The 1,001st user owns the line: without limitedData=true Alianza's list stops at 1,000.
    assert_eq!(panel.sip_lines[0].display_name, "User N1000");
}

#[tokio::test]
async fn only_lines_and_shared_or_paging_lines_with_their_own_sip_user_are_sip_lines() {
    let sim = sim();
    sim.seed_account(PARTITION, SimAccount::new("900000002", "Keys Galore"));
    let types = [
        ("Line", "own"),
        ("AdvancedSharedLine", "own"),
        ("AdvancedSharedLine", ""),
        ("SipPaging", "own"),
        ("SipPaging", ""),
        ("ReferencedUser", ""),
        ("PresenceBlfUser", ""),
        ("SpeedDialUser", ""),
        ("SpeedDialTn", ""),
        ("CallParkingSpot", ""),
        ("IntercomLine", ""),
        ("Custom", ""),
    ];
    for (i, (line_type, own)) in types.iter().enumerate() {
        let username = if own.is_empty() { String::new() } else { format!("{line_type}-{i}") };
        let mut line = SimLine::new(&username, i as u32 + 1, "00CC00CC0001");
        line.line_type = (*line_type).into();
        sim.add_line(PARTITION, "900000002", line);
    }
    let lines = client(&sim).sip_lines("900000002").await.unwrap();
    let names: Vec<&str> = lines.iter().map(|l| l.sip_username.as_str()).collect();
    assert_eq!(names, ["Line-0", "AdvancedSharedLine-1", "SipPaging-3"]);
}

#[tokio::test]
async fn the_panel_shows_the_users_calling_plans_with_their_user_and_date_times() {
    let sim = sim();
    sim.seed_account(PARTITION, SimAccount::new("900000003", "Planned"));
    let mut user = SimUser::new("Ann", "Lee", "STANDARD", "");
    user.calling_plans = vec![SimCallingPlan::new("cp-intl-300", "2026-01-01T00:00:00Z", 300, 18_000)];
    sim.add_user(PARTITION, "900000003", user);
    let panel = client(&sim).account_panel("900000003").await.unwrap();
    let plans: Vec<_> = panel
        .account
        .calling_plans
        .iter()
        .map(|p| (p.name.as_str(), p.user.as_str(), p.start_date.map(|t| t.to_rfc3339())))
        .collect();
    assert_eq!(plans, [("International 300", "Ann Lee", Some("2026-01-01T00:00:00+00:00".to_owned()))]);
}

#[tokio::test]
async fn a_login_404_in_alianzas_json_shape_is_a_refused_login_not_a_wrong_url() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.username = "nobody@isp.example".to_owned().into();
    let err = AlianzaClient::new(vendor_http(), cfg).unwrap().sip_lines(demo::ACCOUNT).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Credentials { fault } if fault.http_status == Some(404) && fault.code == "EntityNotFound"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_client_that_is_let_go_logs_out_once() {
    let sim = sim();
    let http = patchbay::ops::vendor::VendorHttp::new(reqwest::Client::new(), Default::default(), "alianza", "acme");
    let farewells = tokio_util::task::TaskTracker::new();
    let client = AlianzaClient::new(http.with_farewells(farewells.clone()), config(&sim)).unwrap();
    client.sip_lines(demo::ACCOUNT).await.unwrap();
    let clone = client.clone();
    drop(client);
    assert_eq!(sim.calls().get("logout"), 0, "a clone still uses the session");
    drop(clone);
    farewells.close();
    farewells.wait().await;
    assert_eq!(sim.calls().get("logout"), 1);
    assert_eq!(sim.live_tokens(), 0, "the token is gone at Alianza");

    // A client that never logged in has nothing to log out of.
    drop(AlianzaClient::new(vendor_http(), config(&sim)).unwrap());
    tokio::task::yield_now().await;
    assert_eq!(sim.calls().get("logout"), 1);
}
