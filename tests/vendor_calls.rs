//! Every provider's vendor calls go through the one shared layer: each is counted in /metrics by
//! provider, operation and outcome, with its time, whatever the area.

mod common;

use common::{DEMO_TOKEN, TestApp, authed};
use patchbay::proto::v1::{
    self as pb, account_service_client::AccountServiceClient, dialer_service_client::DialerServiceClient,
    provisioning_service_client::ProvisioningServiceClient,
};

/// The demo tenant's account on the Alianza simulator.
const DEMO_ACCOUNT: &str = "100200300";

#[tokio::test]
async fn alianza_elision_and_delacon_calls_are_all_counted_by_provider_operation_and_outcome() {
    let app = TestApp::builder().demo().spawn().await;
    let customer = pb::Customer { nickname: DEMO_ACCOUNT.into(), ..Default::default() };
    AccountServiceClient::new(app.channel.clone())
        .get_account_status(authed(
            pb::GetAccountStatusRequest { tenant: "demo".into(), customer: Some(customer) },
            DEMO_TOKEN,
        ))
        .await
        .unwrap();
    DialerServiceClient::new(app.channel.clone())
        .list_active_lists(authed(pb::ListActiveListsRequest { tenant: "demo".into() }, DEMO_TOKEN))
        .await
        .unwrap();
    ProvisioningServiceClient::new(app.channel.clone())
        .get_region_number_types(authed(
            pb::GetRegionNumberTypesRequest { tenant: "demo".into(), region: pb::Region::Japan.into() },
            DEMO_TOKEN,
        ))
        .await
        .unwrap();

    let metrics = reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap();
    for series in [
        r#"patchbay_vendor_requests_total{provider="alianza",operation="POST authorize",outcome="200"} 1"#,
        r#"patchbay_vendor_requests_total{provider="alianza",operation="GET account",outcome="200"} 1"#,
        r#"patchbay_vendor_requests_total{provider="elision",operation="active_lists",outcome="200"} 1"#,
        r#"patchbay_vendor_requests_total{provider="delacon",operation="getnumbertypes",outcome="200"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    for provider in ["alianza", "elision", "delacon"] {
        let timed = format!("patchbay_vendor_request_seconds_total{{provider=\"{provider}\",");
        assert!(metrics.contains(&timed), "{timed} in\n{metrics}");
    }
    assert!(!metrics.contains("demo-alianza-password") && !metrics.contains("demo-delacon-token"), "{metrics}");
}
