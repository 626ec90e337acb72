//! Every provider's vendor calls go through the one shared layer: each is counted in /metrics by
//! provider, operation and outcome, with its time, and logged inside a span naming the tenant,
//! the provider and the operation, inside the gRPC call's span naming its method.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use common::{DEMO_TOKEN, TestApp, authed};
use patchbay::proto::v1::{
    self as pb, account_service_client::AccountServiceClient, dialer_service_client::DialerServiceClient,
    provisioning_service_client::ProvisioningServiceClient,
};

/// The demo tenant's account on the Alianza simulator.
const DEMO_ACCOUNT: &str = "100200300";

/// GetAccountStatus of the demo account: an Alianza login, lookup, users and lines.
async fn demo_account_status(app: &TestApp) {
    let customer = pb::Customer { nickname: DEMO_ACCOUNT.into(), ..Default::default() };
    AccountServiceClient::new(app.channel.clone())
        .get_account_status(authed(
            pb::GetAccountStatusRequest { tenant: "demo".into(), customer: Some(customer) },
            DEMO_TOKEN,
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn alianza_elision_and_delacon_calls_are_all_counted_by_provider_operation_and_outcome() {
    captured_log(); // before any server starts (and the harness's own subscriber with it)
    let app = TestApp::builder().demo().spawn().await;
    demo_account_status(&app).await;
    DialerServiceClient::new(app.channel.clone())
        .list_active_lists(authed(
            pb::ListActiveListsRequest { tenant: "demo".into(), ..Default::default() },
            DEMO_TOKEN,
        ))
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
        let timed = format!("patchbay_vendor_request_duration_seconds_count{{provider=\"{provider}\",");
        assert!(metrics.contains(&timed), "{timed} in\n{metrics}");
    }
    assert!(!metrics.contains("demo-alianza-password") && !metrics.contains("demo-delacon-token"), "{metrics}");
}

/// Everything this test binary logs, as the server's formatter writes it (one process-wide
/// subscriber: callsites' cached interest then always accounts for it). Every test of this
/// binary calls it first, so it is installed before the harness's `init_tracing` could be.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOG.get_or_init(|| {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&log));
        // As `patchbay serve` writes its text log.
        tracing_subscriber::fmt()
            .with_env_filter("patchbay=debug")
            .fmt_fields(patchbay::ops::text::LogFields)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        log
    }))
}

#[tokio::test]
async fn a_vendor_call_logs_inside_spans_naming_method_tenant_provider_and_operation_and_no_secret() {
    let log = captured_log();
    let app = TestApp::builder().demo().spawn().await;
    demo_account_status(&app).await;
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("vendor call") && l.contains("operation=\"GET account\""))
        .unwrap_or_else(|| panic!("a vendor call line in:\n{text}"));
    for field in [
        "grpc{method=patchbay.v1.AccountService/GetAccountStatus tenant=demo}",
        "vendor{tenant=demo provider=\"alianza\" operation=\"GET account\"}",
        "outcome=\"200\"",
        "elapsed_ms=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    for secret in ["demo-alianza-password", "demo-token", "X-AUTH-TOKEN", "http://127.0.0.1"] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
}
