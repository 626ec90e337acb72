//! ProvisioningService end to end: a real gRPC client -> patchbay -> the Delacon simulator over
//! HTTP -> PostgreSQL, and the simulator's callbacks over real HTTP back to patchbay.

mod common;
mod provisioning_support;

use std::{sync::Arc, time::Duration};

use common::{TestApp, authed, bad_fields, reason};
use patchbay::{
    proto::v1 as pb,
    provisioning::{
        delacon::{
            DelaconSim,
            sim::{CallbackResult, Completion, OrderPlan, SimFeature},
        },
        store,
    },
    sim::{Fault, FaultRule},
};
use provisioning_support::*;
use tonic::Code;
use tonic_types::StatusExt;

fn wait_manual() -> OrderPlan {
    OrderPlan::Wait { result: CallbackResult::Ok, when: Completion::Manual }
}

/// A server with tenant acme, and its order `order-1` of `count` numbers for a new customer that
/// Delacon answered WAIT: it calls back when the test says so (`sim.complete`).
async fn waiting_order(count: i32) -> (TestApp, Arc<DelaconSim>, pb::Order) {
    let app = spawn().await;
    let sim = sim(&app);
    sim.plan_order(wait_manual());
    let order = provision(&app, new_customer_order("order-1", count)).await.unwrap();
    (app, sim, order)
}

/// Stages acme's order `request_id` (one number, for a new customer) as another call (or replica)
/// sent it, allowed `lease` to hear from Delacon; the order and what the claim found.
async fn claimed_elsewhere(
    app: &TestApp,
    request_id: &str,
    lease: Duration,
) -> (pb::ProvisionNumbersRequest, store::Submission) {
    let req = new_customer_order(request_id, 1);
    let claimed = store::claim_submission(&app.state.db, "acme", request_id, &request_hash(&req), lease).await.unwrap();
    (req, claimed)
}

// ---- ProvisionNumbers: each RESULT ----

#[tokio::test]
async fn provision_numbers_for_a_new_customer_answered_ok_is_completed_with_company_and_numbers() {
    let app = spawn().await;
    let order = provision(&app, new_customer_order("order-1", 3)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Completed);
    assert!(!order.order_id.is_empty());
    assert_eq!(order.numbers.len(), 3);
    assert!(order.numbers.iter().all(|n| n.starts_with("0120")), "{:?}", order.numbers);
    assert_eq!(history(&order), [(pb::OrderState::Completed, "provision".to_owned())]);

    // The simulator created the customer with what was ordered.
    let customer = sim(&app).customer(&order.company_id).expect("the customer exists at Delacon");
    assert_eq!(customer.business_name, "Sakura Ramen");
    assert_eq!(customer.email, "owner@sakura-ramen.example");
    assert!(customer.provisioned.contains(&SimFeature::CallRecording));
    assert_eq!(customer.numbers, order.numbers);

    // Stored: GetOrder answers the same.
    let stored = get_order(&app, &order.order_id).await;
    assert_eq!(stored, order);
}

#[tokio::test]
async fn provision_numbers_for_an_existing_company_orders_in_the_company_s_own_region() {
    let app = spawn().await;
    let order = provision(&app, company_order("order-1", "1001", 2)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Completed);
    assert_eq!(order.company_id, "1001");
    // Company 1001 of the demo data is an Australian 1300 customer.
    assert!(order.numbers.iter().all(|n| n.starts_with("1300")), "{:?}", order.numbers);
}

#[tokio::test]
async fn provision_numbers_answered_wait_is_pending_until_the_callback_completes_it_for_a_watcher() {
    let (app, sim, order) = waiting_order(2).await;
    assert_eq!(order.state(), pb::OrderState::Pending);
    assert!(order.message.contains("is received"), "{}", order.message);
    assert!(order.numbers.is_empty());

    let mut stream = watch(&app, &order.order_id).await;
    let first = next(&mut stream).await.unwrap();
    assert_eq!(first.state(), pb::OrderState::Pending);

    // Delacon completes the order and calls back over HTTP.
    assert_eq!(sim.complete(&order.order_id).await, Some(true), "{:?}", sim.deliveries());
    let done = next(&mut stream).await.unwrap();
    assert_eq!(done.state(), pb::OrderState::Completed);
    assert!(done.message.contains("completed"), "{}", done.message);
    assert_eq!(
        history(&done),
        [(pb::OrderState::Pending, "provision".to_owned()), (pb::OrderState::Completed, "callback".to_owned())]
    );
    // The watcher followed the announced change without reading the order: it is the stored one.
    assert_eq!(done, get_order(&app, &order.order_id).await);
    assert!(next(&mut stream).await.is_none(), "the stream ends once the order is final");
}

#[tokio::test]
async fn provision_numbers_answered_fail_is_a_failed_order_with_the_vendor_message() {
    let app = spawn().await;
    sim(&app).plan_order(OrderPlan::Fail("No numbers left in this range".into()));
    let order = provision(&app, new_customer_order("order-1", 1)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Failed);
    assert_eq!(order.message, "No numbers left in this range");
    assert!(!order.order_id.is_empty());
    assert_eq!(get_order(&app, &order.order_id).await.state(), pb::OrderState::Failed);
}

#[tokio::test]
async fn a_wait_order_that_the_callback_fails_ends_failed_with_the_callback_message() {
    let app = spawn().await;
    let sim = sim(&app);
    sim.plan_order(OrderPlan::Wait {
        result: CallbackResult::Fail("Range exhausted".into()),
        when: Completion::Manual,
    });
    let order = provision(&app, new_customer_order("order-1", 2)).await.unwrap();
    assert_eq!(sim.complete(&order.order_id).await, Some(true));
    let done = get_order(&app, &order.order_id).await;
    assert_eq!(done.state(), pb::OrderState::Failed);
    assert_eq!(done.message, "Range exhausted");
}

#[tokio::test]
async fn provision_numbers_is_invalid_argument_with_the_vendor_message_when_delacon_answers_invalid() {
    let app = spawn().await;
    // Well-formed, so patchbay sends it; Delacon does not know the company.
    let err = provision(&app, company_order("order-1", "999999", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "VENDOR_VALIDATION_FAILED");
    assert!(err.message().contains("Data validation failed - companyID 999999 does not exist"), "{}", err.message());
    let info = err.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.domain, "delacon.com");
    assert_eq!(info.metadata["vendor_code"], "INVALID");
    // Nothing was ordered: the same request_id may be used again for the corrected order.
    let order = provision(&app, company_order("order-1", "1001", 1)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Completed);
    assert_eq!(sim(&app).calls().get("provision"), 2);
}

#[tokio::test]
async fn provision_numbers_is_failed_precondition_vendor_auth_failed_when_delacon_answers_login_failed() {
    let app = spawn().await;
    sim(&app).remove_partner(API_KEY);
    let err = provision(&app, new_customer_order("order-1", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "VENDOR_AUTH_FAILED");
    assert!(!err.message().contains(API_KEY), "the API key must not leak: {}", err.message());
    let details = format!("{:?}", err.get_error_details());
    assert!(!details.contains(API_KEY));
}

// ---- ProvisionNumbers: idempotency and vendor faults ----

#[tokio::test]
async fn a_retried_order_with_the_same_request_id_orders_numbers_once() {
    let app = spawn().await;
    let sim = sim(&app);
    let first = provision(&app, new_customer_order("order-1", 2)).await.unwrap();
    let again = provision(&app, new_customer_order("order-1", 2)).await.unwrap();
    assert_eq!(again.order_id, first.order_id);
    assert_eq!(sim.calls().get("provision"), 1);

    // Even after the 24-hour idempotency key is gone, the order row remembers the request_id.
    sqlx::query("DELETE FROM idempotency_keys").execute(&app.state.db).await.unwrap();
    let later = provision(&app, new_customer_order("order-1", 2)).await.unwrap();
    assert_eq!(later.order_id, first.order_id);
    assert_eq!(sim.calls().get("provision"), 1);
    assert_eq!(sim.orders().len(), 1);
}

#[tokio::test]
async fn the_same_request_id_for_a_different_order_is_invalid_argument() {
    let app = spawn().await;
    provision(&app, new_customer_order("order-1", 2)).await.unwrap();
    let err = provision(&app, new_customer_order("order-1", 3)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), ["request_id"]);
    assert_eq!(sim(&app).calls().get("provision"), 1);
}

#[tokio::test]
async fn a_provision_that_times_out_is_unknown_with_vendor_outcome_unknown_and_never_sent_again() {
    let app = spawn_with("    timeout_ms: 300\n").await;
    let sim = sim(&app);
    sim.faults().set_hang_for(Duration::from_secs(2));
    sim.faults().plan(FaultRule::new(Fault::Hang).matching("/provision").times(1));
    let err = provision(&app, new_customer_order("order-1", 2)).await.unwrap_err();
    // UNKNOWN, not DEADLINE_EXCEEDED: that would say the caller's own deadline ran out.
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(reason(&err), "VENDOR_OUTCOME_UNKNOWN");
    assert!(err.message().contains("may or may not have been placed"), "{}", err.message());
    assert!(err.message().contains("check the delacon portal"), "{}", err.message());
    let info = err.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata["vendor_code"], "timeout");
    assert!(err.get_error_details().retry_info().is_none(), "a blind retry is not invited");

    // The caller retries: patchbay does not order a second time.
    let retry = provision(&app, new_customer_order("order-1", 2)).await.unwrap_err();
    assert_eq!(retry.code(), Code::FailedPrecondition);
    assert_eq!(reason(&retry), "ORDER_OUTCOME_UNKNOWN");
    assert_eq!(sim.calls().get("provision"), 0, "the hung request never reached the handler; no other was sent");
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM provisioning_orders WHERE request_id = 'order-1'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(attempts, 1);

    // A new request_id is a new, deliberate order.
    let order = provision(&app, new_customer_order("order-2", 2)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Completed);
}

#[tokio::test]
async fn a_provision_answered_http_500_or_garbage_has_an_unknown_outcome_and_is_not_resent() {
    let app = spawn().await;
    for fault in [Fault::Status(500), Fault::Garbage] {
        sim(&app).faults().plan(FaultRule::new(fault).matching("/provision").times(1));
    }
    let err = provision(&app, new_customer_order("order-1", 2)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(reason(&err), "VENDOR_OUTCOME_UNKNOWN");
    let err = provision(&app, new_customer_order("order-2", 2)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    for id in ["order-1", "order-2"] {
        let retry = provision(&app, new_customer_order(id, 2)).await.unwrap_err();
        assert_eq!(reason(&retry), "ORDER_OUTCOME_UNKNOWN");
    }
}

#[tokio::test]
async fn a_provision_that_cannot_reach_delacon_is_unavailable_and_safe_to_retry() {
    // Nothing listens on port 1: the request is never delivered.
    let app = TestApp::builder().file("acme.yaml", tenant_file("http://127.0.0.1:1", "")).spawn().await;
    let mut req = new_customer_order("order-1", 1);
    req.who = Some(pb::provision_numbers_request::Who::CompanyId("1001".into()));
    req.features.clear();
    req.region = 0;
    req.number_type.clear();
    let err = provision(&app, req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "VENDOR_UNAVAILABLE");
    assert!(err.get_error_details().retry_info().is_some());
    // Nothing was ordered, so the retry is sent again (and fails the same way), not refused.
    let retry = provision(&app, req).await.unwrap_err();
    assert_eq!(reason(&retry), "VENDOR_UNAVAILABLE");
}

// ---- ProvisionNumbers: every validation rule, before any vendor call ----

#[tokio::test]
async fn provision_numbers_refuses_each_invalid_field_before_calling_the_vendor() {
    use pb::provision_numbers_request::Who;
    let app = spawn().await;
    type Edit = fn(&mut pb::ProvisionNumbersRequest);
    let cases: Vec<(&str, Edit)> = vec![
        ("count", |r| r.count = 0),
        ("count", |r| r.count = 11),
        ("region", |r| r.region = 0),
        ("region", |r| r.region = 99),
        ("number_type", |r| r.number_type = "1300".into()),
        ("number_type", |r| r.number_type.clear()),
        ("features[0]", |r| r.features = vec![0]),
        ("features[1]", |r| r.features = vec![1, 1]),
        ("order_summary_email", |r| r.order_summary_email = "orders-at-isp".into()),
        ("terms_accepted", |r| r.terms_accepted = false),
        ("request_id", |r| r.request_id.clear()),
        ("who", |r| r.who = None),
        ("new_customer.business_name", |r| {
            if let Some(Who::NewCustomer(c)) = r.who.as_mut() {
                c.business_name.clear()
            }
        }),
        ("new_customer.email", |r| {
            if let Some(Who::NewCustomer(c)) = r.who.as_mut() {
                c.email = "owner@localhost".into()
            }
        }),
        ("new_customer.termination_number", |r| {
            if let Some(Who::NewCustomer(c)) = r.who.as_mut() {
                c.termination_number = "call me".into()
            }
        }),
        ("company_id", |r| {
            r.who = Some(Who::CompanyId("ACME-1".into()));
            r.features.clear();
            r.region = 0;
            r.number_type.clear();
        }),
        ("region", |r| {
            r.who = Some(Who::CompanyId("1001".into()));
            r.features.clear();
            r.number_type.clear();
        }),
    ];
    for (i, (field, edit)) in cases.into_iter().enumerate() {
        let mut req = new_customer_order(&format!("bad-{i}"), 2);
        edit(&mut req);
        let err = provision(&app, req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "case {i} ({field}): {err:?}");
        assert_eq!(bad_fields(&err), [field], "case {i}: {}", err.message());
    }
    let err = {
        let mut req = new_customer_order("bad-type", 2);
        req.number_type = "1300".into();
        provision(&app, req).await.unwrap_err()
    };
    assert!(err.message().contains("it offers: 0120, 03"), "{}", err.message());
    assert_eq!(sim(&app).calls().get("provision"), 0, "no invalid order reached the vendor");
    assert_eq!(sim(&app).calls().get("getnumbertypes"), 1, "the number types were asked once and cached");
}

// ---- UpdateCustomer ----

#[tokio::test]
async fn an_update_mixing_ordinary_parameters_and_two_toggles_sends_three_requests_and_reports_three_steps() {
    let app = spawn().await;
    let sim = sim(&app);
    let req = pb::UpdateCustomerRequest {
        business_name: Some("Demo Plumbing & Gas".into()),
        voicemail: Some(true),
        transfer_type: pb::TransferType::TransferAndEmail as i32,
        transfer_time: Some(45),
        sms_message: Some("Thanks for calling Demo Plumbing".into()),
        call_track: pb::CallTrack::AllUtmMediumCpc as i32,
        call_recording: Some(false),
        call_feedback_survey: Some(false),
        request_id: "update-1".into(),
        ..update_of("1001")
    };
    let steps = update_customer(&app, req).await.unwrap().steps;
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert_eq!(
        steps[0].parameters,
        ["business_name", "transfer_type", "voicemail", "transfer_time", "sms_message", "call_track"]
    );
    assert!(steps[0].ok);
    assert_eq!(steps[1].parameters, ["call_recording"]);
    assert!(steps[1].ok);
    assert_eq!(steps[1].message, "CallRecording disabled for customer, CallRecording Provisioned:Yes");
    assert_eq!(steps[2].parameters, ["call_feedback_survey"]);
    assert!(steps[2].ok);
    assert_eq!(steps[2].message, "CallFeedbackSurvey disabled for customer, CallFeedbackSurvey Provisioned:No");
    assert_eq!(sim.calls().get("updatecustomer"), 3);

    let customer = sim.customer("1001").unwrap();
    assert_eq!(customer.business_name, "Demo Plumbing & Gas");
    assert_eq!(customer.settings["voicemal"], "Y");
    assert_eq!(customer.settings["xfertype"], "3");
    assert_eq!(customer.settings["xfertime"], "45");
    assert_eq!(customer.settings["CallTrack"], "AllUtmMediumCpc");
    assert!(!customer.enabled.contains(&SimFeature::CallRecording));
}

#[tokio::test]
async fn enabling_a_feature_that_is_not_provisioned_fails_its_step_and_stops_the_later_ones() {
    let app = spawn().await;
    let sim = sim(&app);
    let req = pb::UpdateCustomerRequest {
        call_recording: Some(true),
        ivr: Some(true),
        call_feedback_survey: Some(true),
        ..update_of("1001")
    };
    let steps = update_customer(&app, req).await.unwrap().steps;
    assert_eq!(steps.len(), 2, "{steps:#?}");
    assert!(steps[0].ok);
    assert_eq!(steps[0].message, "CallRecording enabled for customer, CallRecording Provisioned:Yes");
    assert!(!steps[1].ok);
    assert_eq!(steps[1].parameters, ["call_feedback_survey"]);
    assert_eq!(steps[1].message, "CallFeedbackSurvey Provisioned:No");
    assert_eq!(sim.calls().get("updatecustomer"), 2, "IVR was not sent after the failed step");
}

#[tokio::test]
async fn update_customer_refuses_each_invalid_field_before_calling_the_vendor() {
    let app = spawn().await;
    let base = || update_of("1001");
    let cases: Vec<(&str, pb::UpdateCustomerRequest)> = vec![
        ("transfer_time", pb::UpdateCustomerRequest { transfer_time: Some(1000), ..base() }),
        ("transfer_time", pb::UpdateCustomerRequest { transfer_time: Some(-1), ..base() }),
        ("sms_message", pb::UpdateCustomerRequest { sms_message: Some("x".repeat(161)), ..base() }),
        ("transfer_type", pb::UpdateCustomerRequest { transfer_type: 7, ..base() }),
        ("call_track", pb::UpdateCustomerRequest { call_track: 9, ..base() }),
        ("email", pb::UpdateCustomerRequest { email: Some("nobody".into()), ..base() }),
        ("business_name", pb::UpdateCustomerRequest { business_name: Some("  ".into()), ..base() }),
        (
            "one_three_hundred_number",
            pb::UpdateCustomerRequest { one_three_hundred_number: Some("13".into()), ..base() },
        ),
        ("termination_number", pb::UpdateCustomerRequest { termination_number: Some("abc".into()), ..base() }),
        ("company_id", pb::UpdateCustomerRequest { company_id: String::new(), whisper: Some(true), ..base() }),
        ("company_id", pb::UpdateCustomerRequest { company_id: "../1001".into(), whisper: Some(true), ..base() }),
    ];
    for (field, req) in cases {
        let err = update_customer(&app, req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert_eq!(bad_fields(&err), [field], "{}", err.message());
    }
    let nothing = update_customer(&app, base()).await.unwrap_err();
    assert_eq!(reason(&nothing), "NOTHING_TO_UPDATE");
    // 160 characters (not bytes) is still fine, and 999 seconds.
    let ok = pb::UpdateCustomerRequest { sms_message: Some("é".repeat(160)), transfer_time: Some(999), ..base() };
    update_customer(&app, ok).await.unwrap();
    assert_eq!(sim(&app).calls().get("updatecustomer"), 1);
}

#[tokio::test]
async fn updating_an_unknown_company_reports_the_vendor_failure_as_a_failed_step() {
    let app = spawn().await;
    let steps = update_customer(&app, pb::UpdateCustomerRequest { whisper: Some(true), ..update_of("424242") })
        .await
        .unwrap()
        .steps;
    assert_eq!(steps.len(), 1);
    assert!(!steps[0].ok);
    assert_eq!(steps[0].message, "Company 424242 not found");
}

#[tokio::test]
async fn an_update_refused_by_login_failed_is_vendor_auth_failed() {
    let app = spawn().await;
    sim(&app).remove_partner(API_KEY);
    let err =
        update_customer(&app, pb::UpdateCustomerRequest { dnis: Some(true), ..update_of("1001") }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "VENDOR_AUTH_FAILED");
}

// ---- GetRegionNumberTypes ----

#[tokio::test]
async fn get_region_number_types_lists_a_region_s_types_and_caches_them() {
    let app = spawn().await;
    let sim = sim(&app);
    let japan = number_types(&app, pb::Region::Japan).await.unwrap();
    assert_eq!(japan.region_code, "ja-jp");
    let keys: Vec<_> = japan.number_types.iter().map(|t| (t.key.as_str(), t.description.as_str())).collect();
    assert_eq!(keys, [("0120", "0120 Japan Toll Free Number"), ("03", "03 Tokyo")]);
    number_types(&app, pb::Region::Japan).await.unwrap();
    assert_eq!(sim.calls().get("getnumbertypes"), 1, "the second answer came from the cache");
    // A region name with a space travels URL-encoded.
    assert_eq!(number_types(&app, pb::Region::HongKong).await.unwrap().region_code, "zh-hk");
    let err = number_types(&app, pb::Region::Unspecified).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["region"]);
}

#[tokio::test]
async fn get_region_number_types_retries_5xx_and_garbage_then_succeeds() {
    let app = spawn().await;
    let sim = sim(&app);
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("/getnumbertypes").times(1));
    sim.faults().plan(FaultRule::new(Fault::Garbage).matching("/getnumbertypes").times(1));
    let types = number_types(&app, pb::Region::Australia).await.unwrap();
    assert_eq!(types.region_code, "en-au");
    assert_eq!(sim.calls().get("getnumbertypes"), 1, "two faulted attempts, then the handler answered");
}

#[tokio::test]
async fn get_region_number_types_is_unavailable_with_retry_info_after_three_attempts() {
    let app = spawn_with("    timeout_ms: 200\n").await;
    let sim = sim(&app);
    sim.faults().set_hang_for(Duration::from_secs(1));
    sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("/getnumbertypes").times(2));
    sim.faults().plan(FaultRule::new(Fault::Hang).matching("/getnumbertypes").times(1));
    let err = number_types(&app, pb::Region::Singapore).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "VENDOR_UNAVAILABLE");
    assert!(err.message().contains("after 3 attempts"), "{}", err.message());
    assert!(err.get_error_details().retry_info().is_some());
}

// ---- GetOrder, ListOrders, WatchOrder ----

#[tokio::test]
async fn list_orders_pages_newest_first_and_filters_by_state() {
    let app = spawn().await;
    let sim = sim(&app);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(provision(&app, new_customer_order(&format!("ok-{i}"), 1)).await.unwrap().order_id);
    }
    sim.plan_order(OrderPlan::Fail("refused".into()));
    let failed = provision(&app, new_customer_order("fail", 1)).await.unwrap();
    sim.plan_order(wait_manual());
    let pending = provision(&app, new_customer_order("wait", 1)).await.unwrap();

    let list = |page_size: i32, page_token: String, state: pb::OrderState| {
        let mut client = client(&app);
        async move {
            let req = pb::ListOrdersRequest { tenant: "acme".into(), page_size, page_token, state: state as i32 };
            client.list_orders(authed(req, TOKEN)).await
        }
    };
    let page1 = list(2, String::new(), pb::OrderState::Unspecified).await.unwrap().into_inner();
    let got: Vec<_> = page1.orders.iter().map(|o| o.order_id.clone()).collect();
    assert_eq!(got, [pending.order_id.clone(), failed.order_id.clone()]);
    let page2 = list(2, page1.next_page_token.clone(), pb::OrderState::Unspecified).await.unwrap().into_inner();
    let got: Vec<_> = page2.orders.iter().map(|o| o.order_id.clone()).collect();
    assert_eq!(got, [ids[2].clone(), ids[1].clone()]);
    let page3 = list(2, page2.next_page_token.clone(), pb::OrderState::Unspecified).await.unwrap().into_inner();
    assert_eq!(page3.orders.len(), 1);
    assert!(page3.next_page_token.is_empty());

    let failed_only = list(0, String::new(), pb::OrderState::Failed).await.unwrap().into_inner();
    assert_eq!(failed_only.orders.len(), 1);
    assert_eq!(failed_only.orders[0].order_id, failed.order_id);
    let completed = list(0, String::new(), pb::OrderState::Completed).await.unwrap().into_inner();
    assert_eq!(completed.orders.len(), 3);

    // A token belongs to its query.
    let err = list(2, page1.next_page_token, pb::OrderState::Failed).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["page_token"]);
    let err = list(-1, String::new(), pb::OrderState::Unspecified).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["page_size"]);
}

#[tokio::test]
async fn get_order_and_watch_order_of_an_unknown_order_are_not_found() {
    let app = spawn().await;
    let req = pb::GetOrderRequest { tenant: "acme".into(), order_id: "nope".into() };
    let err = client(&app).get_order(authed(req, TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "ORDER_NOT_FOUND");
    let req = pb::WatchOrderRequest { tenant: "acme".into(), order_id: "nope".into() };
    let err = client(&app).watch_order(authed(req, TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn watch_order_of_a_final_order_sends_it_once_and_ends() {
    let app = spawn().await;
    let order = provision(&app, new_customer_order("order-1", 1)).await.unwrap();
    let mut stream = watch(&app, &order.order_id).await;
    assert_eq!(next(&mut stream).await.unwrap().state(), pb::OrderState::Completed);
    assert!(next(&mut stream).await.is_none());
}

#[tokio::test]
async fn an_open_watch_order_stream_ends_with_unavailable_when_the_server_stops() {
    let (app, _, order) = waiting_order(2).await;
    let mut stream = watch(&app, &order.order_id).await;
    assert_eq!(next(&mut stream).await.unwrap().state(), pb::OrderState::Pending);
    // The server stops gracefully (within the harness's 30 s) although a stream is open.
    let stopping = tokio::spawn(app.stop());
    let err = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "SERVER_SHUTTING_DOWN");
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_watch_order_client_on_a_second_instance_sees_a_callback_that_lands_on_the_first() {
    let first = spawn().await;
    let second = TestApp::builder()
        .database(first.database_url.clone())
        .file("acme.yaml", tenant_file("simulator", ""))
        .spawn()
        .await;
    let sim = sim(&first);
    sim.plan_order(wait_manual());
    let order = provision(&first, new_customer_order("order-1", 2)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Pending);

    let mut stream = watch(&second, &order.order_id).await;
    assert_eq!(next(&mut stream).await.unwrap().state(), pb::OrderState::Pending);
    // The first instance's simulator calls back the first instance.
    assert_eq!(sim.complete(&order.order_id).await, Some(true));
    let done = next(&mut stream).await.unwrap();
    assert_eq!(done.state(), pb::OrderState::Completed);
    assert_eq!(done.history.len(), 2);
    assert!(next(&mut stream).await.is_none());
}

// ---- The callback receiver ----

#[tokio::test]
async fn a_callback_is_committed_before_accepted_is_sent() {
    let (app, sim, order) = waiting_order(2).await;
    assert_eq!(sim.complete(&order.order_id).await, Some(true));
    // No waiting: ACCEPTED came after the commit.
    assert_eq!(get_order(&app, &order.order_id).await.state(), pb::OrderState::Completed);
    let deliveries = sim.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].accepted);
}

#[tokio::test]
async fn the_same_callback_delivered_twice_takes_effect_once_and_is_accepted_both_times() {
    let (app, sim, order) = waiting_order(2).await;
    assert_eq!(sim.complete(&order.order_id).await, Some(true));
    let after_first = get_order(&app, &order.order_id).await;
    assert_eq!(sim.redeliver(&order.order_id).await, Some(true));
    let after_second = get_order(&app, &order.order_id).await;
    assert_eq!(after_second, after_first, "the duplicate changed nothing");
    assert_eq!(after_second.history.len(), 2);

    // A contradicting late delivery does not undo the first outcome either.
    let (status, body) =
        post_callback(&app, "acme", SECRET, &[("OrderID", &order.order_id), ("Result", "FAIL"), ("Message", "x")])
            .await;
    assert_eq!((status, body.as_str()), (200, r#"{"RESULT":"ACCEPTED"}"#));
    assert_eq!(get_order(&app, &order.order_id).await.state(), pb::OrderState::Completed);
    let deliveries: i32 = sqlx::query_scalar("SELECT deliveries FROM provisioning_callbacks WHERE order_id = $1")
        .bind(&order.order_id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(deliveries, 3);
}

#[tokio::test]
async fn a_callback_with_a_wrong_secret_or_for_an_unknown_tenant_is_404_without_detail() {
    let (app, _, order) = waiting_order(2).await;
    let form = [("OrderID", order.order_id.as_str()), ("Result", "OK"), ("Message", "done")];
    for (tenant, secret) in
        [("acme", "acme-callback-secret-0123456789abcdeX"), ("acme", "short"), ("nobody", SECRET), ("acme", "")]
    {
        let (status, body) = post_callback(&app, tenant, secret, &form).await;
        assert_eq!(status, 404, "{tenant}/{secret}");
        assert!(body.is_empty(), "no detail: {body}");
    }
    assert_eq!(get_order(&app, &order.order_id).await.state(), pb::OrderState::Pending);
}

#[tokio::test]
async fn a_callback_for_an_unknown_order_gets_result_fail_and_a_malformed_one_is_refused() {
    let app = spawn().await;
    let (status, body) =
        post_callback(&app, "acme", SECRET, &[("OrderID", "77"), ("Result", "OK"), ("Message", "")]).await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["RESULT"], "FAIL");
    assert!(answer["MESSAGE"].as_str().unwrap().contains("unknown OrderID 77"), "{body}");
    let (status, body) = post_callback(&app, "acme", SECRET, &[("OrderID", "77"), ("Result", "MAYBE")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("Result must be OK or FAIL"), "{body}");
}

#[tokio::test]
async fn a_callback_that_arrives_before_the_wait_answer_is_stored_is_not_lost() {
    let app = spawn().await;
    let sim = sim(&app);
    // Delacon calls back before it even answers WAIT.
    sim.plan_order(OrderPlan::Wait { result: CallbackResult::Ok, when: Completion::BeforeAnswer });
    let order = provision(&app, new_customer_order("order-1", 2)).await.unwrap();
    let deliveries = sim.deliveries();
    assert!(deliveries[0].accepted, "{deliveries:?}");
    assert_eq!(order.state(), pb::OrderState::Completed, "the held callback was applied with the answer");
    assert_eq!(
        history(&order),
        [(pb::OrderState::Pending, "provision".to_owned()), (pb::OrderState::Completed, "callback".to_owned())]
    );

    // The callback and the answer at the same moment, many times: none is lost.
    let mut ids = Vec::new();
    for i in 0..10 {
        sim.plan_order(OrderPlan::Wait { result: CallbackResult::Ok, when: Completion::WithAnswer });
        ids.push(provision(&app, new_customer_order(&format!("race-{i}"), 1)).await.unwrap().order_id);
    }
    for id in ids {
        let done = until_final(&app, &id).await;
        assert_eq!(done.state(), pb::OrderState::Completed, "{id}");
        assert_eq!(done.history.len(), 2, "{id}: {:?}", done.history);
    }
}

#[tokio::test]
async fn an_unplanned_large_order_waits_and_completes_by_itself() {
    let app = spawn().await;
    sim(&app).set_default_wait(Duration::from_millis(200));
    let order = provision(&app, new_customer_order("big", 8)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Pending);
    assert_eq!(until_final(&app, &order.order_id).await.state(), pb::OrderState::Completed);
}

// ---- Tenancy, audit, secrets ----

#[tokio::test]
async fn a_disabled_trigger_refuses_calls_but_still_takes_callbacks() {
    let app = spawn_with("    enabled: false\n").await;
    let err = provision(&app, new_customer_order("order-1", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "TRIGGER_DISABLED");
    let (status, _) = post_callback(&app, "acme", SECRET, &[("OrderID", "1"), ("Result", "OK")]).await;
    assert_eq!(status, 200, "the secret is still recognised");
}

#[tokio::test]
async fn every_mutating_call_and_callback_is_audited_without_secrets() {
    let (app, sim, order) = waiting_order(1).await;
    sim.complete(&order.order_id).await;
    provision(&app, new_customer_order("", 1)).await.unwrap_err();
    let req = pb::UpdateCustomerRequest { music_on_hold: Some(true), request_id: "u-1".into(), ..update_of("1001") };
    update_customer(&app, req).await.unwrap();

    // A callback's audit row is written just after its ACCEPTED: allow it a moment.
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for _ in 0..40 {
        let events = app.audit_events(pb::ListAuditEventsRequest { page_size: 50, ..Default::default() }).await;
        rows = events.iter().map(|e| (e.method.clone(), e.outcome.clone(), e.reason.clone())).collect();
        if rows.iter().any(|(m, _, _)| m == "POST /callbacks/delacon") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let has = |method: &str, outcome: &str| rows.iter().any(|(m, o, _)| m.ends_with(method) && o == outcome);
    assert!(has("ProvisioningService/ProvisionNumbers", "OK"), "{rows:#?}");
    assert!(has("ProvisioningService/ProvisionNumbers", "INVALID_ARGUMENT"), "{rows:#?}");
    assert!(has("ProvisioningService/UpdateCustomer", "OK"), "{rows:#?}");
    assert!(has("POST /callbacks/delacon", "OK"), "{rows:#?}");

    let dump: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_events a").fetch_all(&app.state.db).await.unwrap();
    for row in dump {
        assert!(!row.contains(SECRET) && !row.contains(API_KEY), "a secret in an audit row: {row}");
    }
}

// ---- Delivery retries, restarts, the demo ----

#[tokio::test]
async fn delacon_tries_a_refused_callback_three_times_and_a_later_delivery_completes_the_order() {
    let (app, sim, order) = waiting_order(2).await;
    sim.set_callback_retry_delay(Duration::from_millis(20));
    // The portal has a wrong callback URL: every attempt is refused.
    let wrong = app.http_url("/callbacks/delacon/acme/not-the-secret-0123456789abcdef");
    sim.add_partner(API_KEY, Some(wrong));
    assert_eq!(sim.complete(&order.order_id).await, Some(false));
    let deliveries = sim.deliveries();
    assert_eq!(deliveries.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(deliveries.iter().all(|d| !d.accepted && d.answer.starts_with("HTTP 404")), "{deliveries:?}");
    assert!(deliveries.iter().all(|d| !d.answer.contains("not-the-secret")), "no URL in the record");
    assert_eq!(get_order(&app, &order.order_id).await.state(), pb::OrderState::Pending);

    sim.add_partner(API_KEY, Some(app.http_url(&format!("/callbacks/delacon/acme/{SECRET}"))));
    assert_eq!(sim.redeliver(&order.order_id).await, Some(true));
    assert_eq!(get_order(&app, &order.order_id).await.state(), pb::OrderState::Completed);
}

#[tokio::test]
async fn a_pending_order_survives_a_restart_and_its_callback_then_completes_it() {
    let sim = DelaconSim::start_demo("127.0.0.1:0".parse().unwrap()).unwrap();
    sim.set_callback_retry_delay(Duration::from_millis(20));
    let app = TestApp::builder().file("acme.yaml", tenant_file(&sim.url(), "")).spawn().await;
    sim.add_partner(API_KEY, Some(app.http_url(&format!("/callbacks/delacon/acme/{SECRET}"))));
    sim.plan_order(wait_manual());
    let order = provision(&app, company_order("order-1", "1002", 3)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Pending);
    assert_eq!(order.company_id, "1002", "a WAIT answer has no CID; the ordered company is kept");

    let (providers, database) = app.stop().await;
    // Delacon completes the order while patchbay is down: no attempt gets through.
    assert_eq!(sim.complete(&order.order_id).await, Some(false));

    let app = TestApp::builder().database(database).providers_dir(providers).spawn().await;
    sim.add_partner(API_KEY, Some(app.http_url(&format!("/callbacks/delacon/acme/{SECRET}"))));
    assert_eq!(sim.redeliver(&order.order_id).await, Some(true));
    let done = get_order(&app, &order.order_id).await;
    assert_eq!(done.state(), pb::OrderState::Completed);
    assert!(done.message.contains("0120"), "the callback's message names the numbers: {}", done.message);
    // The same request, retried after the restart, is still the same order.
    let again = provision(&app, company_order("order-1", "1002", 3)).await.unwrap();
    assert_eq!(again.order_id, order.order_id);
    assert_eq!(sim.calls().get("provision"), 1);
}

#[tokio::test]
async fn the_demo_tenant_serves_the_readme_examples() {
    let app = TestApp::builder().demo().spawn().await;
    let sim = sim(&app);
    sim.set_default_wait(Duration::from_millis(100));
    let mut client = client(&app);
    let token = common::DEMO_TOKEN;

    let req = pb::GetRegionNumberTypesRequest { tenant: "demo".into(), region: pb::Region::Japan as i32 };
    let types = client.get_region_number_types(authed(req, token)).await.unwrap().into_inner();
    assert_eq!(types.region_code, "ja-jp");

    let mut req = new_customer_order("demo-order-1", 2);
    req.tenant = "demo".into();
    let order = client.provision_numbers(authed(req, token)).await.unwrap().into_inner();
    assert_eq!(order.state(), pb::OrderState::Completed);

    // More than 5 numbers: WAIT, then the simulator calls this server back.
    let mut req = company_order("demo-order-2", "1001", 6);
    req.tenant = "demo".into();
    let order = client.provision_numbers(authed(req, token)).await.unwrap().into_inner();
    assert_eq!(order.state(), pb::OrderState::Pending);
    let req = pb::WatchOrderRequest { tenant: "demo".into(), order_id: order.order_id.clone() };
    let mut stream = client.watch_order(authed(req, token)).await.unwrap().into_inner();
    let mut last = None;
    while let Some(o) = next(&mut stream).await {
        last = Some(o);
    }
    assert_eq!(last.unwrap().state(), pb::OrderState::Completed);

    let req = pb::UpdateCustomerRequest {
        tenant: "demo".into(),
        company_id: "1001".into(),
        business_name: Some("Demo Plumbing & Gas".into()),
        voicemail: Some(true),
        transfer_time: Some(30),
        call_recording: Some(false),
        ivr: Some(true),
        request_id: "demo-update-1".into(),
        ..Default::default()
    };
    let steps = client.update_customer(authed(req, token)).await.unwrap().into_inner().steps;
    let outcome: Vec<_> = steps.iter().map(|s| (s.ok, s.message.as_str())).collect();
    assert_eq!(
        outcome,
        [
            (true, "Customer 1001 updated: BusinessName, voicemal, xfertime"),
            (true, "CallRecording disabled for customer, CallRecording Provisioned:Yes"),
            (false, "IVR Provisioned:No"),
        ]
    );

    let req = pb::ListOrdersRequest { tenant: "demo".into(), page_size: 10, ..Default::default() };
    assert_eq!(client.list_orders(authed(req, token)).await.unwrap().into_inner().orders.len(), 2);
}

// ---- The API key under its portal alias ----

#[tokio::test]
async fn get_tenant_redacts_the_api_key_under_its_alias_and_points_diagnostics_at_the_alias() {
    let file = tenant_file("simulator", "").replace("    auth_token:", "    AuthToken:");
    let app = TestApp::builder().file("acme.yaml", file.clone()).spawn().await;
    let tenant = app.tenant_view("acme").await.unwrap();
    assert!(!tenant.config_json.contains(API_KEY), "{}", tenant.config_json);
    let view: serde_json::Value = serde_json::from_str(&tenant.config_json).unwrap();
    assert_eq!(view["provisioning"]["AuthToken"], "<redacted>", "{view:#}");
    // The key works under its alias.
    provision(&app, company_order("order-1", "1001", 1)).await.unwrap();

    // The provider marks the key as written: a problem with it is reported at `AuthToken`.
    let reloaded = app.next_reload();
    let broken = file.replace(API_KEY, "${env:PATCHBAY_TEST_SURELY_UNSET_DELACON_KEY}");
    std::fs::write(app.providers_dir().join("acme.yaml"), broken).unwrap();
    reloaded.await;
    let tenant = app.tenant_view("acme").await.unwrap();
    assert_eq!(tenant.problems.len(), 1, "{:?}", tenant.problems);
    assert_eq!(tenant.problems[0].path, "triggers.provisioning.AuthToken");
    assert!(tenant.problems[0].message.contains("environment variable"), "{:?}", tenant.problems[0]);
    let line = file.lines().position(|l| l.starts_with("    AuthToken:")).unwrap() + 1;
    assert_eq!((tenant.problems[0].line, tenant.problems[0].column), (line as i32, 16));
}

// ---- Callers that give up; replays tell the order as it is now ----

#[tokio::test]
async fn an_order_whose_caller_gives_up_before_delacon_answers_is_stored_and_replayed_to_a_retry() {
    let app = spawn().await;
    let sim = sim(&app);
    // Every Delacon request takes 1.5 s; the caller waits 300 ms.
    sim.faults().set_latency(Duration::from_millis(1500));
    for (request_id, plan, state) in [
        ("slow-ok", OrderPlan::Complete, ("completed", pb::OrderState::Completed)),
        ("slow-wait", wait_manual(), ("pending", pb::OrderState::Pending)),
    ] {
        sim.plan_order(plan);
        let mut call = authed(company_order(request_id, "1001", 1), TOKEN);
        call.set_timeout(Duration::from_millis(300));
        let err = client(&app).provision_numbers(call).await.unwrap_err();
        assert!(deadline_expired(&err), "{err:?}");
        assert_eq!(submission_state(&app, request_id).await.as_deref(), Some("submitting"), "still waiting");

        // The order goes on without its caller, to its real state.
        eventually(Duration::from_secs(20), "the order reaches its state", || async {
            submission_state(&app, request_id).await.as_deref() == Some(state.0)
        })
        .await;
        let again = provision(&app, company_order(request_id, "1001", 1)).await.unwrap();
        assert_eq!(again.state(), state.1, "{request_id}");
        assert!(!again.order_id.is_empty());
        assert_eq!(get_order(&app, &again.order_id).await, again);
    }
    assert_eq!(sim.calls().get("provision"), 2, "each order reached Delacon once");
}

#[tokio::test]
async fn an_update_whose_caller_gives_up_is_applied_and_its_steps_replayed_to_a_retry() {
    let app = spawn().await;
    let sim = sim(&app);
    sim.faults().set_latency(Duration::from_millis(1500));
    let req = pb::UpdateCustomerRequest {
        business_name: Some("Slow Plumbing".into()),
        call_recording: Some(false),
        request_id: "slow-update".into(),
        ..update_of("1001")
    };
    let mut call = authed(req.clone(), TOKEN);
    call.set_timeout(Duration::from_millis(300));
    let err = client(&app).update_customer(call).await.unwrap_err();
    assert!(deadline_expired(&err), "{err:?}");
    eventually(Duration::from_secs(20), "both steps reach Delacon", || async {
        sim.customer("1001")
            .is_some_and(|c| c.business_name == "Slow Plumbing" && !c.enabled.contains(&SimFeature::CallRecording))
    })
    .await;
    // The task stores its answer a moment after Delacon's second answer; until then a retry is ABORTED.
    let mut tries = 0;
    let steps = loop {
        match update_customer(&app, req.clone()).await {
            Ok(resp) => break resp.steps,
            Err(e) if e.code() == Code::Aborted && tries < 100 => tries += 1,
            Err(e) => panic!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(steps.iter().map(|s| s.ok).collect::<Vec<_>>(), [true, true]);
    assert_eq!(sim.calls().get("updatecustomer"), 2, "the retry was answered, not sent again");
}

#[tokio::test]
async fn a_retried_wait_order_answers_completed_once_its_callback_has_completed_it() {
    let (app, sim, first) = waiting_order(2).await;
    assert_eq!(first.state(), pb::OrderState::Pending);
    assert_eq!(sim.complete(&first.order_id).await, Some(true));

    let again = provision(&app, new_customer_order("order-1", 2)).await.unwrap();
    assert_eq!(again.order_id, first.order_id);
    assert_eq!(again.state(), pb::OrderState::Completed, "the order as it is now, not as first answered");
    assert_eq!(again, get_order(&app, &first.order_id).await);
    assert_eq!(history(&again).len(), 2);
    assert_eq!(sim.calls().get("provision"), 1);
}

// ---- Submissions in flight, overdue, and held callbacks ----

#[tokio::test]
async fn a_stale_submission_does_not_hold_unknown_order_callbacks_and_is_swept_to_unknown() {
    let app = spawn().await;
    // A replica sent this order and stopped before Delacon answered: its answer is overdue.
    let (req, claimed) = claimed_elsewhere(&app, "orphan", Duration::ZERO).await;
    assert!(matches!(claimed, store::Submission::New(_)), "{claimed:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;

    // An unknown order's callback is refused, as for any tenant with nothing in flight.
    let (status, body) =
        post_callback(&app, "acme", SECRET, &[("OrderID", "770"), ("Result", "OK"), ("Message", "")]).await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["RESULT"], "FAIL", "{body}");
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM provisioning_callbacks").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(kept, 0);

    // The sweep settles it as of unknown outcome; a retry is told so, and nothing is re-sent.
    // (The server's own sweeper may get there first: it runs at start and every 15 s.)
    store::sweep(&app.state.db).await.unwrap();
    assert_eq!(submission_state(&app, "orphan").await.as_deref(), Some("unknown"));
    let err = provision(&app, req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ORDER_OUTCOME_UNKNOWN");
    assert_eq!(sim(&app).calls().get("provision"), 0);
}

#[tokio::test]
async fn a_retry_while_the_first_submission_still_awaits_delacon_is_aborted_not_written_off() {
    let app = spawn().await;
    // Another call sent this order a moment ago (its idempotency key since purged).
    let (req, _) = claimed_elsewhere(&app, "in-flight", Duration::from_secs(60)).await;
    let err = provision(&app, req).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "REQUEST_IN_PROGRESS");
    assert!(err.get_error_details().retry_info().is_some());
    assert_eq!(submission_state(&app, "in-flight").await.as_deref(), Some("submitting"), "not written off");
    assert_eq!(sim(&app).calls().get("provision"), 0);
}

#[tokio::test]
async fn a_held_callback_expires_when_no_submission_could_still_be_its_order() {
    let app = spawn().await;
    claimed_elsewhere(&app, "short", Duration::from_millis(700)).await;
    let form = [("OrderID", "880"), ("Result", "OK"), ("Message", "done")];
    let (status, body) = post_callback(&app, "acme", SECRET, &form).await;
    assert_eq!((status, body.as_str()), (200, r#"{"RESULT":"ACCEPTED"}"#), "held while the submission is due");

    tokio::time::sleep(Duration::from_millis(800)).await;
    store::sweep(&app.state.db).await.unwrap();
    assert_eq!(submission_state(&app, "short").await.as_deref(), Some("unknown"));
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM provisioning_callbacks").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(held, 0, "the expired held callback is gone");
    let (status, body) = post_callback(&app, "acme", SECRET, &form).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""RESULT":"FAIL""#) && body.contains("unknown OrderID 880"), "{body}");
}

#[tokio::test]
async fn callbacks_beyond_the_cap_of_held_ones_are_answered_try_again() {
    let app = spawn().await;
    claimed_elsewhere(&app, "busy", Duration::from_secs(60)).await;
    sqlx::query(
        "INSERT INTO provisioning_callbacks (tenant, order_id, result, hold_until)
         SELECT 'acme', 'held-' || i, 'completed', now() + interval '1 minute' FROM generate_series(1, $1) i",
    )
    .bind(store::MAX_HELD_CALLBACKS as i32)
    .execute(&app.state.db)
    .await
    .unwrap();
    let (status, body) =
        post_callback(&app, "acme", SECRET, &[("OrderID", "990"), ("Result", "OK"), ("Message", "")]).await;
    assert_eq!(status, 503);
    assert!(body.contains(r#""RESULT":"FAIL""#), "{body}");
}

// ---- The error policy ----

#[tokio::test]
async fn an_order_refused_with_fail_and_no_order_id_is_failed_precondition_with_the_vendor_message() {
    let app = spawn().await;
    let sim = sim(&app);
    sim.plan_order(OrderPlan::Refuse("Number range closed for new orders".into()));
    let err = provision(&app, company_order("order-1", "1001", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "VENDOR_REJECTED");
    assert!(err.message().contains("Number range closed for new orders"), "{}", err.message());
    assert!(err.get_error_details().retry_info().is_none());
    let info = err.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.domain, "delacon.com");
    assert_eq!(info.metadata["vendor_code"], "FAIL");
    assert_eq!(info.metadata["vendor_message"], "Number range closed for new orders");
    // Nothing was placed: the same request_id may order again.
    let order = provision(&app, company_order("order-1", "1001", 1)).await.unwrap();
    assert_eq!(order.state(), pb::OrderState::Completed);
}

#[tokio::test]
async fn number_types_answered_fail_are_failed_precondition_at_once_and_not_cached() {
    let app = spawn().await;
    let sim = sim(&app);
    sim.set_number_types_failure(Some("something went wrong"));
    let err = number_types(&app, pb::Region::Japan).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "VENDOR_REJECTED");
    assert_eq!(err.get_error_details().error_info().unwrap().metadata["vendor_message"], "something went wrong");
    assert_eq!(sim.calls().get("getnumbertypes"), 1, "a definite answer is not asked again");
    // An order that needs the region's types is refused the same way, before it is sent.
    let err = provision(&app, new_customer_order("order-1", 1)).await.unwrap_err();
    assert_eq!(reason(&err), "VENDOR_REJECTED");
    assert_eq!(sim.calls().get("provision"), 0);

    sim.set_number_types_failure(None);
    assert_eq!(number_types(&app, pb::Region::Japan).await.unwrap().region_code, "ja-jp");
}

#[tokio::test]
async fn a_wrong_base_path_is_failed_precondition_vendor_misconfigured_naming_api_url() {
    let sim = DelaconSim::start_demo("127.0.0.1:0".parse().unwrap()).unwrap();
    sim.add_partner(API_KEY, None);
    let url = format!("{}/rest/config", sim.url());
    let app = TestApp::builder().file("acme.yaml", tenant_file(&url, "")).spawn().await;
    let err = provision(&app, company_order("order-1", "1001", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "VENDOR_MISCONFIGURED");
    assert!(err.message().contains("triggers.provisioning.api_url"), "{}", err.message());
    assert_eq!(err.get_error_details().error_info().unwrap().metadata["vendor_code"], "404");
    let err = number_types(&app, pb::Region::Japan).await.unwrap_err();
    assert_eq!(reason(&err), "VENDOR_MISCONFIGURED");
    // Nothing was ordered: the same request_id may be sent again once the URL is fixed.
    assert_eq!(submission_state(&app, "order-1").await, None);
}

#[tokio::test]
async fn oversized_answers_are_unreadable_an_order_s_outcome_unknown_a_read_unavailable() {
    let app = spawn().await;
    let sim = sim(&app);
    sim.oversize_answers(1);
    let err = provision(&app, company_order("order-1", "1001", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(reason(&err), "VENDOR_OUTCOME_UNKNOWN");
    assert!(err.message().contains("larger than"), "{}", err.message());
    assert_eq!(sim.calls().get("provision"), 1, "Delacon took it; its answer was not read");

    sim.oversize_answers(3);
    let err = number_types(&app, pb::Region::Japan).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "VENDOR_UNAVAILABLE");
    assert!(err.message().contains("after 3 attempts"), "{}", err.message());
}

#[tokio::test]
async fn an_update_answered_http_502_is_unknown_outcome_and_says_how_to_find_out() {
    let app = spawn().await;
    let sim = sim(&app);
    sim.faults().plan(FaultRule::new(Fault::Status(502)).matching("/updatecustomer").times(1));
    let req = pb::UpdateCustomerRequest { whisper: Some(true), request_id: "u-502".into(), ..update_of("1001") };
    let err = update_customer(&app, req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(reason(&err), "VENDOR_OUTCOME_UNKNOWN");
    assert!(err.message().contains("may or may not have been applied"), "{}", err.message());
    assert!(err.message().contains("portal"), "{}", err.message());
    assert!(err.get_error_details().retry_info().is_none());
}
