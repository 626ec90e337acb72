//! Health that tells the truth: with PostgreSQL stopped under a running server, gRPC health and
//! /readyz say NOT_SERVING and calls that need the database answer UNAVAILABLE with RetryInfo,
//! quickly; with it started again, SERVING and calls succeed, without a restart.
//!
//! The design bound is 1.5 s (a probe every 0.5 s with a 1 s limit; a 1.5 s pool acquire
//! timeout); the test allows 4 s so that a loaded CI machine cannot make it flake, and prints
//! what it measured.

mod common;

use std::time::{Duration, Instant};

use common::{DEMO_TOKEN, TestApp, authed, reason};
use patchbay::{
    proto::v1::{self as pb, dialer_service_client::DialerServiceClient},
    store::{EmbeddedOptions, EmbeddedPostgres},
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_types::StatusExt;

const ALLOWED: Duration = Duration::from_secs(4);

async fn health(app: &TestApp, service: &str) -> ServingStatus {
    let req = HealthCheckRequest { service: service.into() };
    match HealthClient::new(app.channel.clone()).check(req).await {
        Ok(r) => r.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

async fn readyz(app: &TestApp) -> u16 {
    let url = format!("http://{}/readyz", app.ops_addr);
    reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Waits (up to [`ALLOWED`]) for `check`; returns how long it took.
async fn within(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < ALLOWED, "{what}: not within {ALLOWED:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

fn create_agent(request_id: &str) -> tonic::Request<pb::CreateAgentRequest> {
    let agent = pb::Agent {
        user: "7001".into(),
        password: "9999".into(),
        level: 1,
        full_name: "Outage Agent".into(),
        group: "AGENTS".into(),
        ..Default::default()
    };
    authed(
        pb::CreateAgentRequest { tenant: "demo".into(), agent: Some(agent), request_id: request_id.into() },
        DEMO_TOKEN,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_health_says_not_serving_and_calls_unavailable_then_serving_again() {
    // A cluster of this test's own, since it is stopped and started under the server.
    let root = std::env::temp_dir().join("patchbay-tests").join(format!("outage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut opts = EmbeddedOptions::new(root.join("pg"));
    opts.durable = false;
    opts.max_connections = 50;
    let start = |opts: EmbeddedOptions, port: Option<u16>| {
        tokio::task::spawn_blocking(move || match port {
            None => EmbeddedPostgres::start(&opts),
            Some(port) => EmbeddedPostgres::start_on_port(&opts, port),
        })
    };
    let mut pg = start(opts.clone(), None).await.unwrap().unwrap();
    let port = pg.port();
    patchbay::store::create_database_if_missing(&pg.url("postgres"), "patchbay").await.unwrap();
    let app = TestApp::builder().demo().database(pg.url("patchbay")).spawn().await;
    assert_eq!(health(&app, "patchbay.v1.DialerService").await, ServingStatus::Serving);
    assert_eq!(readyz(&app).await, 200);

    // Down.
    tokio::task::spawn_blocking(move || {
        pg.stop();
        drop(pg);
    })
    .await
    .unwrap();
    let not_serving = within("gRPC health NOT_SERVING", async || {
        health(&app, "patchbay.v1.DialerService").await == ServingStatus::NotServing
            && health(&app, "").await == ServingStatus::NotServing
    })
    .await;
    let not_ready = within("/readyz 503", async || readyz(&app).await == 503).await;
    let mut dialer = DialerServiceClient::new(app.channel.clone());
    let asked = Instant::now();
    let err = dialer.create_agent(create_agent("outage-1")).await.unwrap_err();
    let answered = asked.elapsed();
    assert_eq!((err.code(), reason(&err)), (Code::Unavailable, "DATABASE_UNAVAILABLE".to_owned()));
    assert!(err.get_error_details().retry_info().is_some(), "with RetryInfo");
    assert!(answered < ALLOWED, "answered after {answered:?}");
    // Without a request_id nothing is claimed first, yet the dialer is not called either: the
    // change could not be audited.
    let mut no_id = create_agent("");
    no_id.get_mut().agent.as_mut().unwrap().user = "7002".into();
    let err = dialer.create_agent(no_id).await.unwrap_err();
    assert_eq!((err.code(), reason(&err)), (Code::Unavailable, "DATABASE_UNAVAILABLE".to_owned()));
    let elision = app.sims.get::<patchbay::dialer::elision::ElisionSim>().unwrap();
    assert!(elision.user("7002").is_none(), "the vendor was not called");

    // Up again, where the server expects it.
    let _pg = start(opts, Some(port)).await.unwrap().unwrap();
    let serving = within("gRPC health SERVING again", async || {
        health(&app, "patchbay.v1.DialerService").await == ServingStatus::Serving
    })
    .await;
    within("/readyz 200 again", async || readyz(&app).await == 200).await;
    dialer.create_agent(create_agent("outage-2")).await.expect("calls succeed again, no restart");
    // The outage's calls are in the audit trail: their rows were held back, then written.
    within("held-back audit rows written", async || {
        let events = app.audit_events(pb::ListAuditEventsRequest { tenant: "demo".into(), ..Default::default() }).await;
        events.iter().filter(|e| e.reason == "DATABASE_UNAVAILABLE").count() == 2
    })
    .await;
    println!(
        "measured: NOT_SERVING after {not_serving:?}, /readyz 503 after {not_ready:?}, UNAVAILABLE answered in \
         {answered:?}, SERVING again {serving:?} after the restart"
    );
    app.stop().await;
    drop(_pg);
    let _ = std::fs::remove_dir_all(&root);
}
