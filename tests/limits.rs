//! The gRPC edge's limits: a call past its deadline (the caller's, or the default of a unary
//! call that brings none) is DEADLINE_EXCEEDED with ErrorInfo, and a call beyond the concurrency
//! limit is refused at once with RESOURCE_EXHAUSTED and RetryInfo, not queued.

mod common;

use std::time::{Duration, Instant};

use common::{DEMO_TOKEN, TestApp, authed, reason};
use patchbay::{
    account::alianza::AlianzaSim,
    platform::Limits,
    proto::v1::{self as pb, account_service_client::AccountServiceClient},
    sim::{Fault, FaultRule},
};
use tonic::Code;
use tonic_types::StatusExt;

/// The demo tenant, whose Alianza (the in-process simulator) never answers an account lookup.
async fn hanging_demo(limits: Limits) -> TestApp {
    let app = TestApp::builder().demo().limits(limits).spawn().await;
    let sim = app.sims.get::<AlianzaSim>().expect("the demo tenant's Alianza simulator");
    sim.faults().set_hang_for(Duration::from_secs(30));
    sim.faults().plan(FaultRule::new(Fault::Hang).matching("/account/"));
    app
}

fn status_request() -> tonic::Request<pb::GetAccountStatusRequest> {
    let customer = pb::Customer { nickname: "100200300".into(), ..Default::default() };
    authed(pb::GetAccountStatusRequest { tenant: "demo".into(), customer: Some(customer) }, DEMO_TOKEN)
}

#[tokio::test]
async fn a_call_past_the_callers_deadline_is_deadline_exceeded_with_error_info_not_cancelled() {
    let app = hanging_demo(Limits::default()).await;
    // A raw HTTP/2 call carrying only the header, as any client's deadline reaches the server
    // (tonic's own client would also time out by itself at the same moment and answer for itself).
    use prost::Message;
    let body = status_request().into_inner().encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend((body.len() as u32).to_be_bytes());
    framed.extend(body);
    let http = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = http
        .post(format!("http://{}/patchbay.v1.AccountService/GetAccountStatus", app.grpc_addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {DEMO_TOKEN}"))
        .header("grpc-timeout", "300m")
        .body(framed)
        .send()
        .await
        .unwrap();
    let err = tonic::Status::from_header_map(resp.headers()).expect("a trailers-only error answer");
    assert_eq!((err.code(), reason(&err)), (Code::DeadlineExceeded, "DEADLINE_EXCEEDED".to_owned()), "{err:?}");
}

#[tokio::test]
async fn a_unary_call_without_a_deadline_gets_the_servers_default() {
    let limits = Limits { default_deadline: Duration::from_millis(300), ..Limits::default() };
    let app = hanging_demo(limits).await;
    let started = Instant::now();
    let err = AccountServiceClient::new(app.channel.clone()).get_account_status(status_request()).await.unwrap_err();
    assert_eq!((err.code(), reason(&err)), (Code::DeadlineExceeded, "DEADLINE_EXCEEDED".to_owned()), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "not the vendor's 30 s hang");
}

#[tokio::test]
async fn a_call_beyond_the_concurrency_limit_is_shed_at_once_with_retry_info() {
    let app = hanging_demo(Limits { max_concurrent_calls: 1, default_deadline: Duration::from_secs(30) }).await;
    let client = AccountServiceClient::new(app.channel.clone());
    let mut first = client.clone();
    let held = tokio::spawn(async move { first.get_account_status(status_request()).await });
    // Wait until the first call holds the only slot (its vendor lookup is hanging).
    let sim = app.sims.get::<AlianzaSim>().unwrap();
    while sim.calls().get("account.lookup") == 0 && sim.calls().get("authorize") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = client.clone().get_account_status(status_request()).await.unwrap_err();
    assert_eq!((err.code(), reason(&err)), (Code::ResourceExhausted, "SERVER_OVERLOADED".to_owned()), "{err:?}");
    assert!(err.get_error_details().retry_info().is_some(), "with RetryInfo");
    held.abort();
    let metrics = reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("grpc_code=\"RESOURCE_EXHAUSTED\"} 1"), "{metrics}");
}
