//! Graceful shutdown: a stopping server lets the calls it has accepted finish.

mod account_support;
mod common;

use std::time::{Duration, Instant};

use account_support::{TENANT, TOKEN, client, demo_customer, serve, vendor};
use common::authed;
use patchbay::proto::v1 as pb;

#[tokio::test]
async fn a_call_in_flight_when_the_server_stops_still_gets_its_answer() {
    let sim = vendor();
    let app = serve(&sim, &[("timeout_ms", "10000")]).await;
    let mut accounts = client(&app);
    let request = || pb::GetAccountStatusRequest { tenant: TENANT.into(), customer: Some(demo_customer()) };
    // Warm up (login), then make the vendor slow.
    accounts.get_account_status(authed(request(), TOKEN)).await.unwrap();
    sim.faults().set_latency(Duration::from_secs(3));

    let in_flight = tokio::spawn(async move { accounts.get_account_status(authed(request(), TOKEN)).await });
    // Long enough for the call to reach the server on a loaded machine, well short of its answer.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    let channel = app.channel.clone();
    app.stop().await;

    let answer = in_flight.await.unwrap().expect("the accepted call is answered, not cut off");
    assert_eq!(answer.get_ref().account_number, demo_customer().nickname);
    assert!(stopping.elapsed() >= Duration::from_millis(1500), "the stop waited for the call");
    // And nothing new is accepted.
    let after = pb::account_service_client::AccountServiceClient::new(channel)
        .get_account_status(authed(request(), TOKEN))
        .await;
    assert!(after.is_err(), "a stopped server answered");
}
