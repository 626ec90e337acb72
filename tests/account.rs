//! AccountService end to end: a real gRPC client -> patchbay -> the Alianza simulator over HTTP ->
//! PostgreSQL. Nothing of ours is mocked.

mod account_support;
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use account_support::{
    Crm, PARTITION, TENANT, TOKEN, create_request, customer, delete_request, eventually, serve, set_status_request,
    sync_request, tenant_file, vendor,
};
use common::{TestApp, bad_fields, reason};
use patchbay::{
    account::{
        alianza::{
            AlianzaSim,
            sim::{SimAccount, SimLine, SimUser, demo},
        },
        provider::DesiredStatus,
        store::{self, Finish, Lease},
    },
    proto::v1::{self as pb},
    sim::{Fault, FaultRule},
    store::{Database, DatabaseConfig},
};
use tonic::Code;
use tonic_types::StatusExt;

fn usernames(lines: &[pb::SipLine]) -> Vec<&str> {
    let mut names: Vec<&str> = lines.iter().map(|l| l.sip_username.as_str()).collect();
    names.sort();
    names
}

fn error_info(status: &tonic::Status) -> tonic_types::ErrorInfo {
    status.get_error_details().error_info().cloned().expect("every error carries ErrorInfo")
}

/// acme's audit events.
async fn audit_events(app: &TestApp) -> Vec<pb::AuditEvent> {
    app.audit_events(pb::ListAuditEventsRequest { tenant: TENANT.into(), ..Default::default() }).await
}

/// A customer account with three SIP lines, two users: `sip-a`, `sip-b`, `sip-c`.
fn seed_lines_account(sim: &AlianzaSim, number: &str) {
    sim.seed_account(PARTITION, SimAccount::new(number, "Line Test"));
    let owner = sim.add_user(PARTITION, number, SimUser::new("Ann", "Lee", "STANDARD", "8015551000"));
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let mac = format!("00AA00AA{}", &number[number.len() - 4..]);
        let mut line = SimLine::new(&format!("sip-{name}-{number}"), i as u32 + 1, &mac);
        line.user_id = Some(owner.clone());
        sim.add_line(PARTITION, number, line);
    }
}

/// A server on a simulator of its own, acme's CRM, and customer `number` with three SIP lines
/// ([`seed_lines_account`]).
async fn lines_account(number: &str) -> (AlianzaSim, TestApp, Crm) {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    seed_lines_account(&sim, number);
    let crm = Crm::acme(&app);
    (sim, app, crm)
}

/// [`lines_account`], its lines synced into the table by a FULL sync.
async fn synced_lines_account(number: &str) -> (AlianzaSim, TestApp, Crm) {
    let (sim, app, mut crm) = lines_account(number).await;
    crm.sync(number, pb::SyncMode::Full, false).await.unwrap();
    (sim, app, crm)
}

// ---- GetAccountStatus ----

#[tokio::test]
async fn get_account_status_returns_the_demo_panel_with_sip_lines() {
    let app = TestApp::builder().demo().spawn().await;
    let panel = Crm::demo(&app).status(demo::ACCOUNT).await.unwrap();
    assert_eq!(panel.account_number, demo::ACCOUNT);
    assert_eq!(panel.name, "Jane Smith Consulting");
    assert_eq!(panel.status(), pb::AccountState::Active);
    assert_eq!(panel.account_type(), pb::AccountType::Advanced);
    assert_eq!(panel.platform_type, "V2_1");
    assert_eq!(panel.product_plans, ["STANDARD", "ADVANCED"]);
    assert_eq!(panel.billing_cycle_day, 15);
    assert_eq!(panel.calling_plans.len(), 1);
    assert_eq!(panel.calling_plans[0].name, "Unlimited North America");
    assert_eq!(panel.calling_plans[0].plan_minutes, 3000);
    assert_eq!(panel.sip_lines.len(), 3);
    let jane = &panel.sip_lines[0];
    assert_eq!((jane.display_name.as_str(), jane.dial_number.as_str()), ("Jane Smith", "8015550100"));
    assert_eq!(jane.emergency_number, "8015550100");
    assert_eq!(jane.mac_address.len(), 12);
    assert!(!jane.sip_password.is_empty());
    assert_eq!(panel.admin_portal_url, "https://admin.alianza.com");
    assert!(app.sims.get::<AlianzaSim>().is_some(), "api_url: simulator runs the simulator in-process");
}

#[tokio::test]
async fn get_account_status_of_a_customer_without_an_account_is_not_found_account_not_enabled() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let err = Crm::acme(&app).status("404404404").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "ACCOUNT_NOT_ENABLED");
    assert!(err.message().contains("not enabled in Alianza"), "{}", err.message());
}

#[tokio::test]
async fn get_account_status_returns_invalid_argument_when_the_account_number_is_missing_or_malformed() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    for (nickname, rule) in [("", "required"), ("12", "3-256"), (&"1".repeat(257), "3-256"), (" 1001", "blanks")] {
        let err = c.status(nickname).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{nickname:?}");
        assert_eq!(bad_fields(&err), ["customer.nickname"], "{nickname:?}");
        assert!(err.message().contains(rule), "{nickname:?}: {}", err.message());
    }
    let err = c.status_of(None).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["customer"]);
    assert_eq!(sim.calls().total(), 0, "nothing reached the vendor");
}

#[tokio::test]
async fn the_account_number_comes_from_the_tenants_account_number_field() {
    let sim = vendor();
    let app = serve(&sim, &[("Account_Number_Field", "alianza_account")]).await;
    let mut c = Crm::acme(&app);
    let mut who = customer("not-the-number");
    who.fields.insert("alianza_account".into(), demo::ACCOUNT.into());
    let panel = c.status_of(Some(who)).await.unwrap();
    assert_eq!(panel.account_number, demo::ACCOUNT);
    let err = c.status(demo::ACCOUNT).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["customer.fields.alianza_account"]);
}

#[tokio::test]
async fn ten_calls_and_a_token_that_expires_mid_run_make_exactly_two_logins() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    for _ in 0..5 {
        c.status(demo::ACCOUNT).await.unwrap();
    }
    assert_eq!(sim.logins(), 1);
    sim.expire_tokens();
    let calls = (0..5).map(|_| {
        let mut c = c.clone();
        async move { c.status(demo::ACCOUNT).await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(sim.logins(), 2, "exactly one new login for the expired token");
}

// ---- vendor faults through gRPC ----

#[tokio::test]
async fn vendor_faults_on_the_panel_reads_answer_the_shared_vendor_error_vocabulary() {
    // (the fault, as a spec; what the vendor does; code, reason, one detail, RetryInfo expected)
    let cases = [
        (
            "a 500 on every attempt of a read is UNAVAILABLE with the vendor's domain and RetryInfo",
            FaultRule::new(Fault::Status(500)).matching("/deviceline").times(3),
            Code::Unavailable,
            "VENDOR_UNAVAILABLE",
            ("http_status", "500"),
            true,
        ),
        (
            "a read that times out on every attempt is UNAVAILABLE with vendor code TIMEOUT",
            FaultRule::new(Fault::Hang).matching("/account/").times(3),
            Code::Unavailable,
            "VENDOR_UNAVAILABLE",
            ("vendor_code", "TIMEOUT"),
            true,
        ),
        (
            "an unreadable body on every attempt of a read is UNAVAILABLE with vendor code BAD_RESPONSE",
            FaultRule::new(Fault::Garbage).matching("/user").times(3),
            Code::Unavailable,
            "VENDOR_UNAVAILABLE",
            ("vendor_code", "BAD_RESPONSE"),
            true,
        ),
        (
            "a plain 404 (not Alianza's own error shape) is VENDOR_MISCONFIGURED naming the tenant key",
            FaultRule::new(Fault::Status(404)).matching("/deviceline").times(1),
            Code::FailedPrecondition,
            "VENDOR_MISCONFIGURED",
            ("tenant_key", "triggers.account.api_url"),
            false,
        ),
    ];
    let sim = vendor();
    let app = serve(&sim, &[("timeout_ms", "300")]).await;
    sim.faults().set_hang_for(Duration::from_secs(5));
    for (spec, fault, code, reason, (key, value), retry) in cases {
        sim.faults().plan(fault);
        let err = Crm::acme(&app).status(demo::ACCOUNT).await.unwrap_err();
        let info = error_info(&err);
        assert_eq!((err.code(), info.reason.as_str(), info.domain.as_str()), (code, reason, "alianza.com"), "{spec}");
        assert_eq!(info.metadata[key], value, "{spec}");
        assert_eq!(err.get_error_details().retry_info().is_some(), retry, "{spec}");
    }
    // Every fault was consumed by the attempts the policy allows, no more.
    Crm::acme(&app).status(demo::ACCOUNT).await.unwrap();
}

#[tokio::test]
async fn a_transient_vendor_500_on_a_read_is_retried_and_succeeds() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("/user").times(2));
    let panel = Crm::acme(&app).status(demo::ACCOUNT).await.unwrap();
    assert_eq!(panel.sip_lines.len(), 3);
}

#[tokio::test]
async fn a_wrong_api_url_is_vendor_misconfigured_not_an_auth_failure() {
    let sim = vendor();
    let app = serve(&sim, &[("api_url", &format!("{}/wrong-base", sim.url()))]).await;
    let err = Crm::acme(&app).status(demo::ACCOUNT).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = error_info(&err);
    assert_eq!((info.reason.as_str(), info.metadata["http_status"].as_str()), ("VENDOR_MISCONFIGURED", "404"));
    assert!(err.message().contains("api_url"), "{}", err.message());
}

#[tokio::test]
async fn create_account_on_a_misconfigured_partition_url_is_failed_precondition_not_invalid_argument() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    sim.faults().plan(FaultRule::new(Fault::Status(404)).matching("POST /v2/partition").times(1));
    let err = Crm::acme(&app).create(create_request("555000120")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = error_info(&err);
    assert_eq!(
        (info.reason.as_str(), info.metadata["tenant_key"].as_str()),
        ("VENDOR_MISCONFIGURED", "triggers.account.api_url, triggers.account.partition_id")
    );
}

#[tokio::test]
async fn create_account_without_a_clear_vendor_answer_is_unknown_outcome_and_never_repeated() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    sim.faults().plan(FaultRule::new(Fault::Status(502)).matching("POST /v2/partition").times(1));
    let req = pb::CreateAccountRequest { request_id: "create-555000121".into(), ..create_request("555000121") };
    let err = Crm::acme(&app).create(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    let info = error_info(&err);
    assert_eq!((info.reason.as_str(), info.metadata["http_status"].as_str()), ("VENDOR_OUTCOME_UNKNOWN", "502"));
    assert!(err.get_error_details().retry_info().is_none(), "a blind retry is not safe");
    assert!(err.message().contains("GetAccountStatus"), "{}", err.message());
    assert_eq!(sim.calls().get("account.create"), 0);
    assert!(sim.account(PARTITION, "555000121").is_none(), "the client did not try again on its own");
}

#[tokio::test]
async fn wrong_vendor_credentials_are_failed_precondition_vendor_auth_failed() {
    let sim = vendor();
    let app = serve(&sim, &[("password", "not-the-password")]).await;
    let err = Crm::acme(&app).status(demo::ACCOUNT).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "VENDOR_AUTH_FAILED");
    assert!(!err.message().contains("not-the-password"));
}

// ---- CreateAccount ----

#[tokio::test]
async fn create_account_creates_it_at_the_vendor_with_the_tenant_defaults() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut req = create_request("555000111");
    req.customer.as_mut().unwrap().status = "TRIAL".into();
    let created = Crm::acme(&app).create(req).await.unwrap();
    assert_eq!(created.account_number, "555000111");
    assert_eq!(created.name, "New Customer");
    assert_eq!(created.status(), pb::AccountState::Active, "status_map: trial is ACTIVE");
    assert_eq!(created.account_type(), pb::AccountType::Advanced);
    assert_eq!(created.admin_portal_url, "https://admin.alianza.com");
    let stored = sim.account(PARTITION, "555000111").unwrap();
    assert_eq!(
        (stored.time_zone.as_str(), stored.regulatory_type.as_str(), stored.inbound_rate_plan_product_id.as_str()),
        ("US/Eastern", "RESIDENTIAL", "demo-rate-plan")
    );
    assert_eq!((stored.billing_cycle_day, stored.extension_length), (12, Some(4)));
    assert_eq!(stored.dialing_behavior_type, "DIAL_NINE_TEN_DIGIT");
}

#[tokio::test]
async fn create_account_uses_the_default_billing_day_and_dialing_behaviour_and_maps_other_statuses_to_disabled() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut req = create_request("555000112");
    req.account_type = pb::AccountType::Simple.into();
    req.billing_cycle_day = 0;
    req.dialing_behavior = pb::DialingBehavior::Unspecified.into();
    req.extension_length = 0;
    req.customer.as_mut().unwrap().status = "prospect".into();
    let created = Crm::acme(&app).create(req).await.unwrap();
    assert_eq!(created.status(), pb::AccountState::Disabled);
    let stored = sim.account(PARTITION, "555000112").unwrap();
    assert_eq!((stored.billing_cycle_day, stored.dialing_behavior_type.as_str()), (1, "TEN_DIGIT"));
}

#[tokio::test]
async fn create_account_refuses_each_broken_rule_on_its_field_before_calling_the_vendor() {
    type Break = fn(&mut pb::CreateAccountRequest);
    // (the rule, as a spec; how a request breaks it; the field blamed; words of the rule's message)
    let cases: [(&str, Break, &str, &str); 10] = [
        (
            "an ADVANCED account with DIAL_NINE needs an extension length",
            |r| r.extension_length = 0,
            "extension_length",
            "required (3-6) for an ADVANCED account with a DIAL_NINE",
        ),
        ("an extension length is 3-6", |r| r.extension_length = 7, "extension_length", "must be 3-6"),
        (
            "a SIMPLE account has no extension length",
            |r| {
                r.account_type = pb::AccountType::Simple.into();
                r.dialing_behavior = pb::DialingBehavior::TenDigit.into();
            },
            "extension_length",
            "SIMPLE",
        ),
        (
            "a SIMPLE account cannot dial nine",
            |r| {
                r.account_type = pb::AccountType::Simple.into();
                r.extension_length = 0;
            },
            "dialing_behavior",
            "ADVANCED accounts only",
        ),
        ("the billing cycle day is 1-28", |r| r.billing_cycle_day = 29, "billing_cycle_day", "1-28"),
        ("the account type is required", |r| r.account_type = 0, "account_type", "required"),
        (
            "the customer's name is required",
            |r| r.customer.as_mut().unwrap().name = " ".into(),
            "customer.name",
            "account name",
        ),
        (
            "an account number is 3-256 characters",
            |r| r.customer.as_mut().unwrap().nickname = "5".repeat(257),
            "customer.nickname",
            "3-256",
        ),
        (
            "an account name has at least 3 characters",
            |r| r.customer.as_mut().unwrap().name = "Al".into(),
            "customer.name",
            "3-256",
        ),
        (
            "an account name has at most 256 characters",
            |r| r.customer.as_mut().unwrap().name = "n".repeat(257),
            "customer.name",
            "this one has 257",
        ),
    ];
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    for (rule, break_it, field, words) in cases {
        let mut req = create_request("555000113");
        break_it(&mut req);
        let err = Crm::acme(&app).create(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{rule}");
        assert_eq!(bad_fields(&err), [field], "{rule}");
        assert!(err.message().contains(words), "{rule}: {}", err.message());
    }
    assert_eq!(sim.calls().total(), 0, "validated before any vendor call");
}

#[tokio::test]
async fn create_account_reports_every_bad_field_at_once() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let req = pb::CreateAccountRequest {
        tenant: TENANT.into(),
        customer: Some(pb::Customer { nickname: "1".into(), ..Default::default() }),
        account_type: pb::AccountType::Simple.into(),
        billing_cycle_day: -1,
        dialing_behavior: pb::DialingBehavior::DialNineSevenDigit.into(),
        extension_length: 2,
        request_id: String::new(),
    };
    let err = Crm::acme(&app).create(req).await.unwrap_err();
    assert_eq!(
        bad_fields(&err),
        [
            "customer.nickname",
            "customer.name",
            "customer.status",
            "billing_cycle_day",
            "dialing_behavior",
            "extension_length"
        ]
    );
}

#[tokio::test]
async fn create_account_maps_a_vendor_rejection_to_invalid_argument_with_the_vendor_code() {
    let sim = vendor();
    let app = serve(
        &sim,
        &[(
            "account_defaults",
            "{ time_zone: US/Eastern, regulatory_type: RESIDENTIAL, inbound_rate_plan_product_id: no-such-plan }",
        )],
    )
    .await;
    let err = Crm::acme(&app).create(create_request("555000114")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let info = error_info(&err);
    assert_eq!((info.reason.as_str(), info.domain.as_str()), ("VENDOR_VALIDATION_FAILED", "alianza.com"));
    assert_eq!(info.metadata["vendor_code"], "InvalidInboundRatePlanProductId");
    assert_eq!(info.metadata["http_status"], "400");
}

#[tokio::test]
async fn create_account_of_a_taken_number_is_already_exists() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let err = Crm::acme(&app).create(create_request(demo::ACCOUNT)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(error_info(&err).metadata["vendor_code"], "AccountNumberInUse");
}

#[tokio::test]
async fn create_account_is_idempotent_by_request_id_and_audited() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    let req = pb::CreateAccountRequest { request_id: "create-555000115".into(), ..create_request("555000115") };
    let first = c.create(req.clone()).await.unwrap();
    let again = c.create(req).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(sim.calls().get("account.create"), 1, "the retry was answered from the idempotency store");
    let events = audit_events(&app).await;
    let creates: Vec<_> = events.iter().filter(|e| e.method.ends_with("AccountService/CreateAccount")).collect();
    assert_eq!(creates.len(), 2);
    assert!(creates.iter().all(|e| e.provider == "alianza" && e.outcome == "OK"));
    assert!(creates.iter().any(|e| e.reason == "IDEMPOTENT_REPLAY"));
}

#[tokio::test]
async fn create_account_whose_caller_gives_up_still_completes_is_audited_and_replays_to_a_retry() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    // Every vendor request takes 1.5 s; the caller waits 300 ms.
    sim.faults().set_latency(Duration::from_millis(1500));
    let req = pb::CreateAccountRequest { request_id: "create-555000122".into(), ..create_request("555000122") };
    let err = c.create_within(req.clone(), Duration::from_millis(300)).await.unwrap_err();
    // The deadline expired. (tonic, on both ends, reports an expired deadline as CANCELLED
    // "Timeout expired"; grpc-go and grpcurl callers see DEADLINE_EXCEEDED.)
    assert!(
        err.code() == Code::DeadlineExceeded || (err.code() == Code::Cancelled && err.message().contains("Timeout")),
        "{err:?}"
    );

    // The creation goes on without its caller, and is audited with its real outcome.
    eventually(Duration::from_secs(30), "the account is created at the vendor", async || {
        sim.account(PARTITION, "555000122").is_some()
    })
    .await;
    let mut audited = Vec::new();
    eventually(Duration::from_secs(10), "the creation is audited", async || {
        audited = audit_events(&app).await.into_iter().filter(|e| e.request_id == "create-555000122").collect();
        !audited.is_empty()
    })
    .await;
    assert_eq!((audited[0].outcome.as_str(), audited[0].reason.as_str()), ("OK", ""));
    assert_eq!(audited[0].provider, "alianza");

    // A retry with the same request_id gets the stored answer: no second creation.
    sim.faults().clear();
    let again = c.create(req).await.unwrap();
    assert_eq!((again.account_number.as_str(), again.name.as_str()), ("555000122", "New Customer"));
    assert_eq!(sim.calls().get("account.create"), 1);
    let replays = audit_events(&app).await.into_iter().filter(|e| e.reason == "IDEMPOTENT_REPLAY").count();
    assert_eq!(replays, 1);
}

// ---- SyncSipLines / ListSipLines ----

#[tokio::test]
async fn full_sync_adds_updates_and_deletes_and_list_shows_rows_by_field_id() {
    let number = "600000001";
    let (sim, _app, mut c) = lines_account(number).await;
    let first = c.sync(number, pb::SyncMode::Full, false).await.unwrap();
    assert_eq!(first.added.len(), 3);
    assert!(first.updated.is_empty() && first.deleted.is_empty() && first.unchanged.is_empty() && !first.dry_run);

    // At the vendor: b's password changes, c goes, d arrives.
    assert!(sim.edit_line(PARTITION, &format!("sip-b-{number}"), |l| l.sip_password = "rotated".into()));
    assert!(sim.remove_line(PARTITION, &format!("sip-c-{number}")));
    sim.add_line(PARTITION, number, SimLine::new(&format!("sip-d-{number}"), 4, "00BB00BB0001"));
    let second = c.sync(number, pb::SyncMode::Full, false).await.unwrap();
    assert_eq!(usernames(&second.added), [format!("sip-d-{number}")]);
    assert_eq!(usernames(&second.updated), [format!("sip-b-{number}")]);
    assert_eq!(usernames(&second.deleted), [format!("sip-c-{number}")]);
    assert_eq!(usernames(&second.unchanged), [format!("sip-a-{number}")]);

    let rows = c.sip_rows(number).await.unwrap();
    let mut by_user: Vec<_> = rows.iter().map(|r| (r.fields[&105].clone(), r.fields.clone())).collect();
    by_user.sort();
    assert_eq!(by_user.len(), 3);
    let b = &by_user[1].1;
    assert_eq!(b[&105], format!("sip-b-{number}"));
    assert_eq!(b[&103], "rotated");
    assert_eq!(b[&102], "Ann Lee");
    assert_eq!(b[&101], "8015551000");
    assert_eq!(b[&104], "2");
    let d = &by_user[2].1;
    assert_eq!((d[&102].as_str(), d[&104].as_str()), ("Device 00BB00BB0001", "4"), "no owner: the device name");
}

#[tokio::test]
async fn add_only_sync_never_deletes_and_dry_run_writes_nothing() {
    let number = "600000002";
    let (sim, _app, mut c) = lines_account(number).await;
    let dry = c.sync(number, pb::SyncMode::Full, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.added.len(), 3);
    assert!(c.sip_rows(number).await.unwrap().is_empty());

    c.sync(number, pb::SyncMode::AddOnly, false).await.unwrap();
    sim.remove_line(PARTITION, &format!("sip-a-{number}"));
    sim.edit_line(PARTITION, &format!("sip-b-{number}"), |l| l.line_number = 9);
    let dry = c.sync(number, pb::SyncMode::AddOnly, true).await.unwrap();
    assert_eq!(usernames(&dry.updated), [format!("sip-b-{number}")]);
    let add_only = c.sync(number, pb::SyncMode::AddOnly, false).await.unwrap();
    assert!(add_only.deleted.is_empty());
    assert_eq!(usernames(&add_only.kept), [format!("sip-a-{number}")]);
    assert_eq!(usernames(&add_only.updated), [format!("sip-b-{number}")]);
    assert_eq!(c.sip_rows(number).await.unwrap().len(), 3);

    // A FULL dry run shows the deletion but keeps the row.
    let dry = c.sync(number, pb::SyncMode::Full, true).await.unwrap();
    assert_eq!(usernames(&dry.deleted), [format!("sip-a-{number}")]);
    assert_eq!(c.sip_rows(number).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_vendor_failure_half_way_through_a_sync_changes_nothing() {
    let number = "600000003";
    let (sim, _app, mut c) = synced_lines_account(number).await;
    let before = c.sip_rows(number).await.unwrap();

    sim.remove_line(PARTITION, &format!("sip-a-{number}"));
    sim.edit_line(PARTITION, &format!("sip-b-{number}"), |l| l.sip_password = "new".into());
    // The account and its users answer; its lines do not.
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("/deviceline"));
    let err = c.sync(number, pb::SyncMode::Full, false).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let after = c.sip_rows(number).await.unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn two_syncs_of_one_customer_at_once_never_interleave() {
    let number = "600000004";
    let (sim, _app, c) = lines_account(number).await;
    // A slow vendor, so that the second sync starts while the first is reading.
    sim.faults().set_latency(Duration::from_millis(150));
    let run = || {
        let mut c = c.clone();
        async move { c.sync(number, pb::SyncMode::Full, false).await }
    };
    let (a, b) = tokio::join!(run(), run());
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut added = [a.added.len(), b.added.len()];
    added.sort();
    // Serialised: one sync added the three rows, the other found them in place.
    assert_eq!(added, [0, 3]);
    assert_eq!(a.unchanged.len() + b.unchanged.len(), 3);
}

#[tokio::test]
async fn slow_vendor_syncs_hold_no_database_connection_while_they_wait() {
    let sim = vendor();
    let app = serve(&sim, &[("timeout_ms", "10000")]).await;
    // More syncs than the server's pool has connections (10 in tests).
    let numbers: Vec<String> = (0..12).map(|i| format!("63000{i:04}")).collect();
    for number in &numbers {
        sim.seed_account(PARTITION, SimAccount::new(number, "Slow Sync"));
    }
    // Each sync's line read hangs 8 s (then gets a 504, and its retry an answer).
    sim.faults().set_hang_for(Duration::from_secs(8));
    sim.faults().plan(FaultRule::new(Fault::Hang).matching("/deviceline").times(numbers.len() as u32));
    let finished = Arc::new(AtomicUsize::new(0));
    let syncs: Vec<_> = numbers
        .iter()
        .map(|number| {
            let (mut c, finished, number) = (Crm::acme(&app), finished.clone(), number.clone());
            tokio::spawn(async move {
                let answer = c.sync(&number, pb::SyncMode::Full, false).await;
                finished.fetch_add(1, Ordering::SeqCst);
                answer
            })
        })
        .collect();
    // Users are read alongside the lines: once all are read, every sync is waiting for its lines.
    eventually(Duration::from_secs(20), "every sync waits for Alianza", async || {
        sim.calls().get("user.list") >= numbers.len() as u64
    })
    .await;
    let rows = Crm::acme(&app).sip_rows(demo::ACCOUNT).await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(finished.load(Ordering::SeqCst), 0, "the database answered while every sync still waited for Alianza");
    for sync in syncs {
        sync.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_sync_that_read_the_vendor_before_a_delete_never_writes_the_deleted_rows_back() {
    let number = "600000006";
    let (sim, app, mut c) = lines_account(number).await;
    let db = app.state.db.clone();
    // The customer's table is locked, as by a delete's clean-up under way.
    let mut held = db.begin().await.unwrap();
    store::lock_customer(&mut held, TENANT, number).await.unwrap();
    let sync = tokio::spawn({
        let mut c = c.clone();
        async move { c.sync(number, pb::SyncMode::Full, false).await }
    });
    eventually(Duration::from_secs(10), "the sync has read the vendor's lines", async || {
        sim.calls().get("deviceline.list") == 1
    })
    .await;
    // Meanwhile the account is deleted: at the vendor, then here, as DeleteAccount does it.
    assert!(sim.remove_account(PARTITION, number));
    let ticket = store::sip_ticket(&db).await.unwrap();
    store::delete_rows(&mut held, TENANT, number).await.unwrap();
    store::record_write(&mut held, TENANT, number, ticket).await.unwrap();
    held.commit().await.unwrap();

    let err = sync.await.unwrap().unwrap_err();
    assert_eq!(reason(&err), "ACCOUNT_NOT_ENABLED", "it read the vendor again and found the account gone");
    let rows = c.sip_rows(number).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn sync_answers_replay_by_request_id_without_keeping_sip_passwords_in_the_idempotency_store() {
    let number = "600000007";
    let (sim, app, mut c) = lines_account(number).await;
    let req = pb::SyncSipLinesRequest {
        request_id: "sync-600000007".into(),
        ..sync_request(number, pb::SyncMode::Full, false)
    };
    let first = c.sync_with(req.clone()).await.unwrap();
    assert_eq!(first.added.len(), 3);
    assert!(first.added.iter().all(|l| l.sip_password.starts_with("pw-sip-")), "{:?}", first.added);

    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE request_id = 'sync-600000007'")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    for line in &first.added {
        let secret = line.sip_password.as_bytes();
        assert!(!stored.windows(secret.len()).any(|w| w == secret), "a SIP password is in the idempotency store");
    }

    let again = c.sync_with(req).await.unwrap();
    assert_eq!(again, first, "the replay has the passwords again, from the stored table");
    assert_eq!(sim.calls().get("deviceline.list"), 1, "replayed, not synced again");
}

#[tokio::test]
async fn sync_of_a_customer_without_an_account_is_not_found() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let err = Crm::acme(&app).sync("700700700", pb::SyncMode::Full, false).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::NotFound, "ACCOUNT_NOT_ENABLED"));
}

#[tokio::test]
async fn demo_sync_fills_the_table() {
    let app = TestApp::builder().demo().spawn().await;
    let mut c = Crm::demo(&app);
    let synced = c.sync(demo::ACCOUNT, pb::SyncMode::Full, false).await.unwrap();
    assert_eq!(synced.added.len(), 3);
    let rows = c.sip_rows(demo::ACCOUNT).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.fields.keys().copied().collect::<Vec<_>>() == [101, 102, 103, 104, 105]));
}

// ---- SetCustomerStatus ----

#[tokio::test]
async fn set_customer_status_applies_the_mapped_status_at_once() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    let answer = c.set_status(demo::ACCOUNT, "suspended").await.unwrap();
    assert_eq!(answer.desired(), pb::AccountState::Disabled);
    assert_eq!(answer.delivery(), pb::Delivery::Applied);
    assert_eq!(sim.account(PARTITION, demo::ACCOUNT).unwrap().status, "DISABLED");
    let answer = c.set_status(demo::ACCOUNT, "Current").await.unwrap();
    assert_eq!(answer.desired(), pb::AccountState::Active);
    assert_eq!(sim.account(PARTITION, demo::ACCOUNT).unwrap().status, "ACTIVE");
    let stored = store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().unwrap();
    assert_eq!((stored.state.as_str(), stored.generation), ("applied", 2));
}

#[tokio::test]
async fn set_customer_status_needs_the_crm_status() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let err = Crm::acme(&app).set_status(demo::ACCOUNT, "").await.unwrap_err();
    assert_eq!(bad_fields(&err), ["customer.status"]);
    assert!(store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().is_none());
}

#[tokio::test]
async fn set_customer_status_of_a_customer_without_an_account_is_not_found_and_not_retried() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let err = Crm::acme(&app).set_status("404404404", "current").await.unwrap_err();
    assert_eq!(reason(&err), "ACCOUNT_NOT_ENABLED");
    let stored = store::intent(&app.state.db, TENANT, "404404404").await.unwrap().unwrap();
    assert_eq!(stored.state, "rejected");
}

#[tokio::test]
async fn a_status_change_while_the_vendor_is_down_is_delivered_once_when_it_is_back_and_the_latest_wins() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("/v2/partition"));
    for crm_status in ["current", "closed", "current", "suspended"] {
        let answer = c.set_status(demo::ACCOUNT, crm_status).await.unwrap();
        assert_eq!(answer.delivery(), pb::Delivery::Pending, "{crm_status}");
    }
    let stored = store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().unwrap();
    assert_eq!((stored.state.as_str(), stored.generation), ("pending", 4));
    assert!(stored.last_error.contains("503"), "{}", stored.last_error);
    assert_eq!(sim.account(PARTITION, demo::ACCOUNT).unwrap().status, "ACTIVE");

    sim.faults().clear();
    let db = app.state.db.clone();
    eventually(Duration::from_secs(20), "the worker delivers the pending status", async || {
        store::intent(&db, TENANT, demo::ACCOUNT).await.unwrap().unwrap().state == "applied"
    })
    .await;
    assert_eq!(sim.account(PARTITION, demo::ACCOUNT).unwrap().status, "DISABLED", "the latest desire won");
    assert_eq!(sim.calls().get("account.update"), 1, "delivered once");
}

#[tokio::test]
async fn a_status_change_pending_when_the_server_stops_is_delivered_after_the_restart() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("/v2/partition"));
    let answer = Crm::acme(&app).set_status(demo::ACCOUNT, "cancelled").await.unwrap();
    assert_eq!(answer.delivery(), pb::Delivery::Pending);
    let (providers, database) = app.stop().await;

    // The vendor recovers while patchbay is down; nothing can deliver the change meanwhile.
    sim.faults().clear();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.account(PARTITION, demo::ACCOUNT).unwrap().status, "ACTIVE");

    let app = TestApp::builder().providers_dir(providers).database(database).spawn().await;
    eventually(Duration::from_secs(20), "the restarted worker delivers it", async || {
        sim.account(PARTITION, demo::ACCOUNT).unwrap().status == "DISABLED"
    })
    .await;
    let db = app.state.db.clone();
    eventually(Duration::from_secs(5), "it is marked applied", async || {
        store::intent(&db, TENANT, demo::ACCOUNT).await.unwrap().unwrap().state == "applied"
    })
    .await;
    assert_eq!(sim.calls().get("account.update"), 1);
}

#[tokio::test]
async fn a_delivery_lease_held_by_a_process_that_died_is_free_at_once_and_a_live_ones_is_not() {
    use sqlx::Connection;
    let url = common::fresh_database().await;
    let db = Database::open(&DatabaseConfig::Url(url.clone()), 4).await.unwrap().pool;
    let lease = |owner| Lease { length: Duration::from_secs(150), owner };
    // A live process (it holds its instance lock) has the delivery of one customer...
    let live: i64 = 0x11fe;
    let mut live_conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)").bind(live).execute(&mut live_conn).await.unwrap();
    store::record_desired(&db, TENANT, "630000001", DesiredStatus::Disabled, lease(live)).await.unwrap().unwrap();
    // ... and a process that died (nobody holds its lock) had another's.
    store::record_desired(&db, TENANT, "630000002", DesiredStatus::Disabled, lease(0xdead)).await.unwrap().unwrap();
    assert!(
        store::claim_one::<DesiredStatus>(&db, TENANT, "630000001", lease(7)).await.unwrap().is_none(),
        "a live lease holds"
    );
    let taken = store::claim_one::<DesiredStatus>(&db, TENANT, "630000002", lease(live)).await.unwrap();
    assert!(taken.is_some(), "a dead one is free at once");
    let due = store::claim_due::<DesiredStatus>(&db, 10, lease(8)).await.unwrap();
    assert!(due.is_empty(), "both are held by a live process now: {due:?}");
    drop(live_conn);
}

#[tokio::test]
async fn a_delivery_whose_lease_ran_out_can_neither_finish_nor_release_the_next_holders_claim() {
    // A database of its own, with no worker claiming rows behind the test's back.
    let db = Database::open(&DatabaseConfig::Url(common::fresh_database().await), 4).await.unwrap().pool;
    let number = "620000001";
    let short = Lease { length: Duration::from_millis(1), owner: 1 };
    let stale =
        store::record_desired(&db, TENANT, number, DesiredStatus::Disabled, short).await.unwrap().expect("claimed");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let minute = Lease { length: Duration::from_secs(60), owner: 1 };
    let current = store::claim_one::<DesiredStatus>(&db, TENANT, number, minute).await.unwrap().expect("free again");
    assert_ne!(stale.token, current.token);

    // The stale holder finishes late (its PATCH landed long after its lease ran out).
    assert_eq!(store::finish_applied(&mut db.acquire().await.unwrap(), &stale).await.unwrap(), Finish::LeaseLost);
    assert!(!store::release(&mut db.acquire().await.unwrap(), &stale, Duration::ZERO, "late").await.unwrap());
    assert_eq!(
        store::finish_rejected(&mut db.acquire().await.unwrap(), &stale, "late").await.unwrap(),
        Finish::LeaseLost
    );
    let intent = store::intent(&db, TENANT, number).await.unwrap().unwrap();
    assert_eq!((intent.state.as_str(), intent.leased), ("pending", true), "the current holder keeps its lease");
    assert_eq!(intent.last_error, "");

    assert_eq!(store::finish_applied(&mut db.acquire().await.unwrap(), &current).await.unwrap(), Finish::Done);
    assert_eq!(store::intent(&db, TENANT, number).await.unwrap().unwrap().state, "applied");
}

#[tokio::test]
async fn a_status_its_tenant_can_no_longer_deliver_backs_off_then_is_rejected_instead_of_retried_forever() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let db = app.state.db.clone();
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("/v2/partition"));
    let answer = Crm::acme(&app).set_status(demo::ACCOUNT, "closed").await.unwrap();
    assert_eq!(answer.delivery(), pb::Delivery::Pending);

    // The operator switches the status follow-up off: nothing can deliver the change any more.
    let reloaded = app.next_reload();
    std::fs::write(app.providers_dir().join("acme.yaml"), tenant_file(&sim.url(), &[("customer_status", "false")]))
        .unwrap();
    reloaded.await;
    // Tried a few times already, and due now: it is parked for longer each time.
    sqlx::query("UPDATE account_status_intents SET attempts = 6, next_attempt_at = now(), lease_until = NULL")
        .execute(&db)
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the worker parks it", async || {
        let i = store::intent(&db, TENANT, demo::ACCOUNT).await.unwrap().unwrap();
        i.attempts == 7 && !i.leased
    })
    .await;
    let parked = store::intent(&db, TENANT, demo::ACCOUNT).await.unwrap().unwrap();
    assert_eq!(parked.state, "pending");
    assert!(parked.due_in > Duration::from_secs(10 * 60), "backs off beyond a fixed minute: {:?}", parked.due_in);
    assert!(parked.last_error.contains("customer_status"), "{}", parked.last_error);

    // A day later it is still undeliverable: it ends, rejected, with the reason.
    sqlx::query("UPDATE account_status_intents SET desired_at = now() - interval '25 hours', next_attempt_at = now()")
        .execute(&db)
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the worker gives it up", async || {
        store::intent(&db, TENANT, demo::ACCOUNT).await.unwrap().unwrap().state == "rejected"
    })
    .await;
    let ended = store::intent(&db, TENANT, demo::ACCOUNT).await.unwrap().unwrap();
    assert!(ended.last_error.contains("given up after 24 hours"), "{}", ended.last_error);
    assert_eq!(sim.calls().get("account.update"), 0);
}

// ---- DeleteAccount ----

#[tokio::test]
async fn delete_account_requires_confirm() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let req = pb::DeleteAccountRequest { confirm: false, ..delete_request(demo::ACCOUNT, "") };
    let err = Crm::acme(&app).delete_with(req).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["confirm"]);
    assert!(sim.account(PARTITION, demo::ACCOUNT).is_some());
}

#[tokio::test]
async fn delete_account_with_numbers_assigned_is_failed_precondition() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let err = Crm::acme(&app).delete(demo::ACCOUNT_WITH_NUMBERS, "").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = error_info(&err);
    assert_eq!((info.reason.as_str(), info.domain.as_str()), ("NUMBERS_ASSIGNED", "alianza.com"));
    assert!(err.message().contains(demo::ASSIGNED_NUMBER), "names the numbers: {}", err.message());
    assert_eq!(sim.calls().get("account.delete"), 0, "refused before the delete is sent");
    assert!(sim.account(PARTITION, demo::ACCOUNT_WITH_NUMBERS).is_some());
}

#[tokio::test]
async fn delete_account_deletes_the_vendor_account_and_the_stored_rows() {
    let number = "600000005";
    let (sim, app, mut c) = synced_lines_account(number).await;
    c.set_status(number, "current").await.unwrap();
    let deleted = c.delete(number, "delete-600000005").await.unwrap();
    assert_eq!(deleted.deleted_sip_lines, 3);
    assert!(sim.account(PARTITION, number).is_none());
    assert!(c.sip_rows(number).await.unwrap().is_empty());
    assert!(store::intent(&app.state.db, TENANT, number).await.unwrap().is_none());
}

#[tokio::test]
async fn delete_account_of_an_account_the_vendor_no_longer_has_still_removes_the_stored_rows() {
    let number = "600000008";
    let (sim, app, mut c) = synced_lines_account(number).await;
    c.set_status(number, "current").await.unwrap();
    // Deleted at Alianza already (earlier, or by someone else).
    assert!(sim.remove_account(PARTITION, number));
    let deleted = c.delete(number, "").await.unwrap();
    assert_eq!((deleted.deleted_sip_lines, deleted.already_deleted), (3, true));
    assert!(c.sip_rows(number).await.unwrap().is_empty());
    assert!(store::intent(&app.state.db, TENANT, number).await.unwrap().is_none());
    assert_eq!(sim.calls().get("account.delete"), 0);
}

#[tokio::test]
async fn a_delete_whose_local_clean_up_fails_after_the_vendor_deleted_is_finished_by_a_retry() {
    let number = "600000009";
    let (sim, app, mut c) = synced_lines_account(number).await;
    // The customer's table stays locked longer than a writer waits, so the clean-up fails.
    let mut held = app.state.db.begin().await.unwrap();
    store::lock_customer(&mut held, TENANT, number).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(60), c.delete(number, "delete-600000009"))
        .await
        .expect("the delete does not wait for the lock forever");
    let err = first.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::Aborted, "CUSTOMER_BUSY"));
    assert!(sim.account(PARTITION, number).is_none(), "Alianza deleted it");
    held.rollback().await.unwrap();
    assert_eq!(c.sip_rows(number).await.unwrap().len(), 3);

    let retried = c.delete(number, "delete-600000009").await.unwrap();
    assert_eq!((retried.deleted_sip_lines, retried.already_deleted), (3, true));
    assert!(c.sip_rows(number).await.unwrap().is_empty());
}

// ---- the trigger's switches ----

#[tokio::test]
async fn a_disabled_trigger_is_failed_precondition_trigger_disabled() {
    let sim = vendor();
    let app = serve(&sim, &[("enabled", "false")]).await;
    let err = Crm::acme(&app).status(demo::ACCOUNT).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "TRIGGER_DISABLED"));
    assert_eq!(sim.calls().total(), 0);
}

#[tokio::test]
async fn customer_status_off_refuses_the_panel_and_the_status_follow_up_but_not_the_console() {
    let sim = vendor();
    let app = serve(&sim, &[("customer_status", "false")]).await;
    let mut c = Crm::acme(&app);
    let err = c.status(demo::ACCOUNT).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "FEATURE_DISABLED"));
    assert_eq!(error_info(&err).metadata["feature"], "customer_status");
    let err = c.set_status(demo::ACCOUNT, "closed").await.unwrap_err();
    assert_eq!(reason(&err), "FEATURE_DISABLED");
    c.sync(demo::ACCOUNT, pb::SyncMode::Full, true).await.unwrap();
}

#[tokio::test]
async fn synchro_console_off_refuses_create_sync_list_and_delete_but_not_the_panel() {
    let sim = vendor();
    let app = serve(&sim, &[("synchro_console", "false")]).await;
    let mut c = Crm::acme(&app);
    let err = c.create(create_request("555000116")).await.unwrap_err();
    assert_eq!(reason(&err), "FEATURE_DISABLED");
    let err = c.sync(demo::ACCOUNT, pb::SyncMode::Full, false).await.unwrap_err();
    assert_eq!(reason(&err), "FEATURE_DISABLED");
    assert_eq!(reason(&c.sip_rows(demo::ACCOUNT).await.unwrap_err()), "FEATURE_DISABLED");
    let err = c.delete(demo::ACCOUNT, "").await.unwrap_err();
    assert_eq!(error_info(&err).metadata["feature"], "synchro_console");
    c.status(demo::ACCOUNT).await.unwrap();
}

#[tokio::test]
async fn a_tenant_without_an_account_trigger_is_failed_precondition_trigger_not_configured() {
    let app = TestApp::builder().file("acme.yaml", common::tenant_yaml(TENANT, TOKEN)).spawn().await;
    let err = Crm::acme(&app).status(demo::ACCOUNT).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "TRIGGER_NOT_CONFIGURED"));
}

// ---- the tenant file ----

/// ValidateConfig of acme's file whose account trigger has an `ftp:` api_url and `changes`.
async fn validate_ftp_trigger(changes: &[(&str, &str)]) -> pb::ValidateConfigResponse {
    let app = TestApp::builder().demo().spawn().await;
    app.validate_config("acme.yaml", tenant_file("ftp://api.alianza.com", changes)).await
}

#[tokio::test]
async fn validate_config_reports_account_trigger_problems_with_positions() {
    let answer = validate_ftp_trigger(&[
        ("status_map", "{ current: SUSPENDED }"),
        ("password", "${env:PATCHBAY_TEST_SURELY_UNSET_PASSWORD}"),
        ("colour", "blue"),
    ])
    .await;
    assert!(!answer.valid);
    let found: Vec<_> = answer.diagnostics.iter().map(|d| (d.line, d.column, d.path.as_str())).collect();
    // Trigger keys start on line 6, indented four spaces; `colour` is appended last (line 19).
    assert!(found.contains(&(19, 5, "triggers.account.colour")), "{found:?}");
    assert!(found.contains(&(15, 28, "triggers.account.status_map.current")), "{found:?}");
    let messages: Vec<_> = answer.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("unknown variant `SUSPENDED`")), "{messages:?}");
    // Problems of shape (unknown keys, wrong types) come first; the semantic checks (the api_url
    // rule, the unset secret) run once the trigger reads cleanly: see the next test.
    assert_eq!(answer.diagnostics.len(), 2, "{:?}", answer.diagnostics);
}

#[tokio::test]
async fn validate_config_reports_semantic_problems_of_a_well_typed_trigger() {
    let answer = validate_ftp_trigger(&[
        ("password", "${env:PATCHBAY_TEST_SURELY_UNSET_PASSWORD}"),
        (
            "custom_sip_table",
            "{ dial_number: 101, display_name: 101, password: 103, port_number: 104, user_name: 105 }",
        ),
    ])
    .await;
    let found: Vec<_> =
        answer.diagnostics.iter().map(|d| format!("{}:{}: {}: {}", d.line, d.column, d.path, d.message)).collect();
    assert!(found.iter().any(|d| d.starts_with("10:14: triggers.account.api_url: must be `simulator`")), "{found:#?}");
    assert!(
        found.iter().any(|d| d.starts_with(
            "14:15: triggers.account.password: environment variable `PATCHBAY_TEST_SURELY_UNSET_PASSWORD` is not set"
        )),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|d| d.contains("custom_sip_table.display_name: field ID 101 is also `dial_number`")),
        "{found:#?}"
    );
}

#[tokio::test]
async fn an_invalid_account_trigger_stops_the_server_start() {
    let err = TestApp::builder()
        .file("acme.yaml", tenant_file("simulator", &[("custom_sip_table", "")]))
        .try_spawn()
        .await
        .err()
        .expect("the server must not start");
    let text = err.to_string();
    let patchbay::AppError::InvalidTenants(diagnostics, _) = err else { panic!("{text}") };
    assert!(
        diagnostics
            .iter()
            .any(|d| d.path == "triggers.account.custom_sip_table" && d.message.contains("synchro_console")),
        "{diagnostics:?}"
    );
}

#[tokio::test]
async fn the_tenant_view_never_shows_the_vendor_password() {
    let app = TestApp::builder().demo().spawn().await;
    let tenant = app.tenant_view("demo").await.unwrap();
    let view = format!("{tenant:?}");
    assert!(!view.contains("demo-alianza-password"), "{view}");
    assert!(view.contains("DEMO_ALIANZA_PASSWORD"), "{view}");
}

#[tokio::test]
async fn one_request_id_on_two_different_methods_does_not_clash() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    let request_id = String::from("crm-action-1");
    c.sync_with(pb::SyncSipLinesRequest {
        request_id: request_id.clone(),
        ..sync_request(demo::ACCOUNT, pb::SyncMode::Full, false)
    })
    .await
    .unwrap();
    let status = pb::SetCustomerStatusRequest { request_id, ..set_status_request(demo::ACCOUNT, "closed") };
    let answer = c.set_status_with(status).await.unwrap();
    assert_eq!(answer.delivery(), pb::Delivery::Applied);
}

#[tokio::test]
async fn two_replicas_on_one_database_deliver_each_pending_status_exactly_once() {
    let sim = vendor();
    let first = serve(&sim, &[]).await;
    let second = TestApp::builder()
        .file("acme.yaml", tenant_file(&sim.url(), &[]))
        .database(first.database_url.clone())
        .spawn()
        .await;
    let numbers: Vec<String> = (0..8).map(|i| format!("61000000{i}")).collect();
    for number in &numbers {
        sim.seed_account(PARTITION, SimAccount::new(number, "Replica Test"));
    }
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("/v2/partition"));
    for (i, number) in numbers.iter().enumerate() {
        // Half the changes arrive through each replica.
        let app = if i % 2 == 0 { &first } else { &second };
        let answer = Crm::acme(app).set_status(number, "closed").await.unwrap();
        assert_eq!(answer.delivery(), pb::Delivery::Pending);
    }
    sim.faults().clear();
    let db = first.state.db.clone();
    eventually(Duration::from_secs(20), "both workers deliver every status", async || {
        for number in &numbers {
            if store::intent(&db, TENANT, number).await.unwrap().unwrap().state != "applied" {
                return false;
            }
        }
        true
    })
    .await;
    assert!(numbers.iter().all(|n| sim.account(PARTITION, n).unwrap().status == "DISABLED"));
    assert_eq!(sim.calls().get("account.update"), numbers.len() as u64, "each delivered exactly once");
}

// ---- Alianza sessions end with their client ----

#[tokio::test]
async fn a_stopping_server_logs_out_of_alianza() {
    let sim = vendor();
    let app = serve(&sim, &[]).await;
    Crm::acme(&app).status(demo::ACCOUNT).await.unwrap();
    assert_eq!(sim.live_tokens(), 1);
    app.stop().await;
    assert_eq!(sim.calls().get("logout"), 1);
    assert_eq!(sim.live_tokens(), 0, "no session lingers for its 8 hours");
}

#[tokio::test]
async fn changed_credentials_log_the_old_session_out_and_the_next_call_logs_in_anew() {
    let sim = vendor();
    sim.add_login("crm2@acme.example", "rotated-secret", PARTITION);
    let app = serve(&sim, &[]).await;
    let mut c = Crm::acme(&app);
    c.status(demo::ACCOUNT).await.unwrap();
    let reloaded = app.next_reload();
    let changes = [("username", "crm2@acme.example"), ("password", "rotated-secret")];
    std::fs::write(app.providers_dir().join("acme.yaml"), tenant_file(&sim.url(), &changes)).unwrap();
    reloaded.await;
    eventually(Duration::from_secs(5), "the old session is logged out", async || sim.calls().get("logout") == 1).await;
    c.status(demo::ACCOUNT).await.unwrap();
    assert_eq!((sim.logins(), sim.live_tokens()), (2, 1));
}
