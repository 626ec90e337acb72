//! /metrics stays bounded and parseable whatever paths callers send to the gRPC listener.

mod common;

use common::TestApp;

/// The sample lines of a Prometheus text exposition (not `#` lines), by series.
fn series(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(series, _)| series).to_owned())
        .collect()
}

#[tokio::test]
async fn made_up_method_paths_add_one_unknown_series_and_never_a_label_of_their_own() {
    let app = TestApp::builder().demo().spawn().await;
    let scrape = || async { reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap() };
    let grpc = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let call = |path: String| {
        let grpc = grpc.clone();
        let url = format!("http://{}{path}", app.grpc_addr);
        async move {
            grpc.post(url).header("content-type", "application/grpc").body(vec![0u8, 0, 0, 0, 0]).send().await.unwrap();
        }
    };
    // One made-up call first, so that the `unknown` series exists before the count is taken.
    call("/warm-up/x".into()).await;
    let before = series(&scrape().await);

    for i in 0..300 {
        call(format!("/random-{i}/x")).await;
    }
    call("/bad%22name%0Ax/y".into()).await;
    call("/patchbay.v1.AccountService/NoSuchMethod".into()).await;

    let text = scrape().await;
    let after = series(&text);
    assert_eq!(after.len(), before.len(), "no new series:\n{text}");
    assert!(!text.contains("random-") && !text.contains("bad") && !text.contains("NoSuchMethod"), "{text}");
    let unknown: Vec<&String> = after.iter().filter(|s| s.contains("grpc_method=\"unknown\"")).collect();
    assert!(!unknown.is_empty(), "made-up calls are counted, as `unknown`:\n{text}");
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        // name{label="value",...} number: every label value is one of the server's own words.
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "a sample value: {line}");
        assert!(series.chars().all(|c| c.is_ascii_graphic()), "no spaces or control characters: {line}");
    }
}

/// The sum of the samples of `name` whose labels include all of `labels` (0 when none).
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn a_stream_is_counted_when_it_ends_with_its_final_code_not_at_its_headers() {
    use common::{DEMO_TOKEN, authed};
    use patchbay::proto::v1::{self as pb, provisioning_service_client::ProvisioningServiceClient};

    let app = TestApp::builder().demo().spawn().await;
    let scrape = || async { reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap() };
    let mut client = ProvisioningServiceClient::new(app.channel.clone());
    // More than 5 numbers: the demo's Delacon answers WAIT and calls back about 3 s later.
    let order = pb::ProvisionNumbersRequest {
        tenant: "demo".into(),
        who: Some(pb::provision_numbers_request::Who::CompanyId("1001".into())),
        count: 6,
        terms_accepted: true,
        request_id: "metrics-watch-1".into(),
        ..Default::default()
    };
    let order = client.provision_numbers(authed(order, DEMO_TOKEN)).await.unwrap().into_inner();
    assert_eq!(order.state(), pb::OrderState::Pending);
    let watch = || pb::WatchOrderRequest { tenant: "demo".into(), order_id: order.order_id.clone() };
    let watch_ok = ["grpc_method=\"WatchOrder\"", "grpc_code=\"OK\""];
    let watch_cancelled = ["grpc_method=\"WatchOrder\"", "grpc_code=\"CANCELLED\""];

    // One watch the client drops after the first message, one it follows to the end.
    let mut dropped = client.watch_order(authed(watch(), DEMO_TOKEN)).await.unwrap().into_inner();
    assert_eq!(dropped.message().await.unwrap().unwrap().state(), pb::OrderState::Pending);
    let mut followed = client.watch_order(authed(watch(), DEMO_TOKEN)).await.unwrap().into_inner();
    assert_eq!(followed.message().await.unwrap().unwrap().state(), pb::OrderState::Pending);
    let open = scrape().await;
    assert_eq!(sample(&open, "grpc_server_handled_total", &watch_ok), 0.0, "open streams are not counted yet:\n{open}");
    assert_eq!(sample(&open, "grpc_server_in_flight", &["grpc_method=\"WatchOrder\""]), 2.0, "{open}");

    drop(dropped);
    let mut last = pb::OrderState::Pending;
    while let Some(o) = followed.message().await.unwrap() {
        last = o.state();
    }
    assert_eq!(last, pb::OrderState::Completed);
    // The server sees the dropped stream's reset soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = scrape().await;
        if sample(&text, "grpc_server_handled_total", &watch_cancelled) == 1.0 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&text, "grpc_server_handled_total", &watch_ok), 1.0, "{text}");
    assert_eq!(sample(&text, "grpc_server_handled_total", &watch_cancelled), 1.0, "{text}");
    assert_eq!(sample(&text, "grpc_server_in_flight", &["grpc_method=\"WatchOrder\""]), 0.0, "{text}");
}

#[tokio::test]
async fn a_tenant_s_vendor_series_are_shown_while_it_is_served_and_gone_once_its_file_is_removed() {
    use patchbay::proto::v1::{self as pb, account_service_client::AccountServiceClient};
    let app = TestApp::builder().demo().spawn().await;
    let customer = pb::Customer { nickname: "100200300".into(), ..Default::default() };
    let req = pb::GetAccountStatusRequest { tenant: "demo".into(), customer: Some(customer) };
    AccountServiceClient::new(app.channel.clone())
        .get_account_status(common::authed(req, common::DEMO_TOKEN))
        .await
        .unwrap();
    let scrape = async || reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap();
    let text = scrape().await;
    assert!(
        text.lines().any(|l| l
            .starts_with(r#"patchbay_tenant_vendor_requests_total{tenant="demo",provider="alianza",outcome="ok"}"#)),
        "{text}"
    );
    std::fs::remove_file(app.providers_dir().join("demo.yaml")).unwrap();
    app.state.registry.reload_all();
    let text = scrape().await;
    assert!(!text.contains(r#"tenant="demo""#), "a removed tenant's series are gone:\n{text}");
}
