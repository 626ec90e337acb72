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
