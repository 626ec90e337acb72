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
    let app = hanging_demo(Limits {
        max_concurrent_calls: 1,
        default_deadline: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_the_callback_listener_are_capped_and_closed_and_never_take_health_down() {
    use tokio::io::AsyncReadExt;
    let limits =
        Limits { http_connections: 8, ops_connections: 4, http_idle: Duration::from_secs(1), ..Limits::default() };
    let app = TestApp::builder().demo().limits(limits).spawn().await;
    // Far more idle connections than the callback listener takes.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(app.http_addr).await.unwrap());
    }
    // The other listeners answer as usual.
    let started = Instant::now();
    let healthz = reqwest::get(app.ops_url("/healthz")).await.unwrap();
    assert_eq!(healthz.status(), 200);
    let mut account = AccountServiceClient::new(app.channel.clone());
    let e = account.get_account_status(authed(pb::GetAccountStatusRequest::default(), DEMO_TOKEN)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "gRPC answers: {e:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // The accepted idle connections are closed after the idle limit; the waiting ones get their
    // turn and are closed in their turn, so the listener serves again.
    let mut closed = 0;
    for conn in idle.iter_mut().take(8) {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 8, "the idle connections were closed");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = reqwest::Client::new()
            .get(app.http_url("/callbacks/nothing"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok();
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the callback listener serves again");
    }
}
