//! The provider registry end to end: a real server, real files, real gRPC.

mod common;

use common::{ADMIN_TOKEN, DEMO_TOKEN, TestApp, authed, reason, tenant_yaml};
use patchbay::{AppError, proto::v1 as pb};
use tonic::Code;

#[tokio::test]
async fn the_server_serves_the_demo_tenant_to_an_admin() {
    let app = TestApp::builder().demo().spawn().await;
    let tenants =
        app.registry_client().list_tenants(authed(pb::ListTenantsRequest::default(), ADMIN_TOKEN)).await.unwrap();
    let ids: Vec<_> = tenants.get_ref().tenants.iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(ids, ["demo"]);
    let demo = &tenants.get_ref().tenants[0];
    assert_eq!(demo.name, "Demo ISP");
    assert_eq!(demo.token_count, 1);
    assert!(demo.problems.is_empty());
}

#[tokio::test]
async fn registry_service_refuses_tenant_tokens_unknown_tokens_and_no_token() {
    let app = TestApp::builder().demo().spawn().await;
    let mut client = app.registry_client();
    let tenant_token = client.list_tenants(authed(pb::ListTenantsRequest::default(), DEMO_TOKEN)).await.unwrap_err();
    assert_eq!(tenant_token.code(), Code::PermissionDenied);
    assert_eq!(reason(&tenant_token), "ADMIN_TOKEN_REQUIRED");
    let unknown = client.list_tenants(authed(pb::ListTenantsRequest::default(), "nope")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let none = client.list_tenants(pb::ListTenantsRequest::default()).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    assert_eq!(reason(&none), "MISSING_TOKEN");
}

#[tokio::test]
async fn an_invalid_file_stops_the_start_with_every_problem_of_every_file() {
    let err = TestApp::builder()
        .file("acme.yaml", "tenant: acme\naccess:\n  tokens: [plain-token]\nextra: 1\n")
        .file("beta.yaml", "tenant: gamma\naccess:\n  tokens: []\n")
        .try_spawn()
        .await
        .err()
        .expect("the server must not start");
    let AppError::InvalidTenants(diagnostics, _) = err else { panic!("unexpected error: {err}") };
    let lines: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has("acme.yaml:3:12: access.tokens[0]: must be `sha256:`"), "{lines:#?}");
    assert!(has("acme.yaml:4:1: extra: unknown field `extra`"), "{lines:#?}");
    assert!(has("beta.yaml:1:9: tenant: must equal the file name"), "{lines:#?}");
}

#[tokio::test]
async fn serve_valid_tenants_only_serves_the_valid_files_and_reports_the_others() {
    let app = TestApp::builder()
        .file("good.yaml", tenant_yaml("good", "good-token"))
        .file("bad.yaml", "tenant: bad\n")
        .serve_valid_tenants_only()
        .spawn()
        .await;
    let tenants =
        app.registry_client().list_tenants(authed(pb::ListTenantsRequest::default(), ADMIN_TOKEN)).await.unwrap();
    let ids: Vec<_> = tenants.get_ref().tenants.iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(ids, ["good"]);
    assert!(app.state.registry.reload_failures() >= 1);
}

#[tokio::test]
async fn a_changed_file_is_reloaded_for_new_calls() {
    let app = TestApp::builder().file("acme.yaml", tenant_yaml("acme", "old-token")).spawn().await;
    let reloaded = app.next_reload();
    let text = "tenant: acme\nname: ACME Renamed\naccess:\n  tokens: [\"".to_owned()
        + &patchbay::ops::auth::TokenHash::of_token("new-token").to_string()
        + "\"]\n";
    std::fs::write(app.providers_dir().join("acme.yaml"), text).unwrap();
    reloaded.await;
    let acme = app.state.registry.get("acme").unwrap();
    assert_eq!(acme.name, "ACME Renamed");
    let new = patchbay::ops::auth::TokenHash::of_token("new-token");
    let old = patchbay::ops::auth::TokenHash::of_token("old-token");
    assert!(app.state.registry.authorize(&new, "acme").is_ok());
    assert_eq!(app.state.registry.authorize(&old, "acme").unwrap_err().code, Code::Unauthenticated);
}

/// providers.d as Kubernetes mounts a ConfigMap: each file a symlink through `..data`, itself a
/// symlink to a timestamped directory, which an update replaces by renaming a new `..data` link
/// over the old one.
fn configmap_version(dir: &std::path::Path, version: &str, name: &str) {
    let data = dir.join(version);
    std::fs::create_dir(&data).unwrap();
    let text = format!(
        "tenant: acme\nname: {name}\naccess:\n  tokens: [\"{}\"]\n",
        patchbay::ops::auth::TokenHash::of_token("acme-token")
    );
    std::fs::write(data.join("acme.yaml"), text).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test]
async fn a_configmap_mount_is_reloaded_when_kubernetes_swaps_its_data_link() {
    let dir = tempfile::tempdir().unwrap();
    configmap_version(dir.path(), "..2026_12_01_10_00_00.1", "ACME v1");
    std::os::unix::fs::symlink("..data/acme.yaml", dir.path().join("acme.yaml")).unwrap();
    let app = TestApp::builder().providers_dir(dir).spawn().await;
    assert_eq!(app.state.registry.get("acme").unwrap().name, "ACME v1");
    assert_eq!(app.state.registry.tenants().len(), 1, "the timestamped directories are not tenants");

    let reloaded = app.next_reload();
    configmap_version(app.providers_dir(), "..2026_12_01_10_05_00.2", "ACME v2");
    std::fs::remove_dir_all(app.providers_dir().join("..2026_12_01_10_00_00.1")).unwrap();
    reloaded.await;
    assert_eq!(app.state.registry.get("acme").unwrap().name, "ACME v2");
}

#[tokio::test]
async fn an_invalid_change_keeps_the_last_good_version_and_reports_the_problem() {
    let app = TestApp::builder().file("acme.yaml", tenant_yaml("acme", "acme-token")).spawn().await;
    let failures_before = app.state.registry.reload_failures();
    let reloaded = app.next_reload();
    std::fs::write(app.providers_dir().join("acme.yaml"), "tenant: acme\naccess:\n  tokens: [not-a-hash]\n").unwrap();
    reloaded.await;

    // Still served, as it was.
    let token = patchbay::ops::auth::TokenHash::of_token("acme-token");
    assert!(app.state.registry.authorize(&token, "acme").is_ok());
    // Reported through RegistryService ...
    let tenant = app
        .registry_client()
        .get_tenant(authed(pb::GetTenantRequest { tenant: "acme".into() }, ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tenant.problems.len(), 1, "{:?}", tenant.problems);
    assert_eq!(tenant.problems[0].path, "access.tokens[0]");
    assert_eq!((tenant.problems[0].line, tenant.problems[0].column), (3, 12));
    // ... and in the failed-reload counter of /metrics.
    assert!(app.state.registry.reload_failures() > failures_before);
    let metrics = reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap();
    let failures = metrics.lines().find_map(|l| l.strip_prefix("patchbay_registry_reload_failures_total "));
    assert!(failures.is_some_and(|n| n.parse::<u64>().unwrap() >= 1), "a counter, at least 1:\n{metrics}");
    assert!(metrics.contains("# TYPE patchbay_registry_reload_failures counter"), "{metrics}");
}

#[tokio::test]
async fn a_removed_file_removes_its_tenant() {
    let app = TestApp::builder()
        .file("acme.yaml", tenant_yaml("acme", "acme-token"))
        .file("beta.yaml", tenant_yaml("beta", "beta-token"))
        .spawn()
        .await;
    let reloaded = app.next_reload();
    std::fs::remove_file(app.providers_dir().join("beta.yaml")).unwrap();
    reloaded.await;
    assert!(app.state.registry.get("beta").is_none());
    assert!(app.state.registry.get("acme").is_some());
}

#[tokio::test]
async fn a_new_file_adds_its_tenant() {
    let app = TestApp::builder().file("acme.yaml", tenant_yaml("acme", "acme-token")).spawn().await;
    let reloaded = app.next_reload();
    std::fs::write(app.providers_dir().join("new.yaml"), tenant_yaml("new", "new-token")).unwrap();
    reloaded.await;
    assert!(app.state.registry.get("new").is_some());
}

#[tokio::test]
async fn two_files_claiming_one_tenant_keep_neither_change_and_are_reported() {
    let app = TestApp::builder().file("acme.yaml", tenant_yaml("acme", "acme-token")).spawn().await;
    let reloaded = app.next_reload();
    std::fs::write(app.providers_dir().join("acme.yml"), tenant_yaml("acme", "other-token")).unwrap();
    reloaded.await;
    let report = app
        .registry_client()
        .reload_config(authed(pb::ReloadConfigRequest {}, ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(
        report.diagnostics.iter().any(|d| d.message.contains("keep exactly one file per tenant")),
        "{:?}",
        report.diagnostics
    );
    let first = patchbay::ops::auth::TokenHash::of_token("acme-token");
    assert!(app.state.registry.authorize(&first, "acme").is_ok(), "the version served before stays");
}

#[tokio::test]
async fn sighup_style_reload_reports_what_changed() {
    let app = TestApp::builder().file("acme.yaml", tenant_yaml("acme", "acme-token")).spawn().await;
    let mut client = app.registry_client();
    let report = client.reload_config(authed(pb::ReloadConfigRequest {}, ADMIN_TOKEN)).await.unwrap().into_inner();
    assert_eq!(report.unchanged, 1);
    assert!(report.added.is_empty() && report.updated.is_empty() && report.removed.is_empty());
}

#[tokio::test]
async fn validate_config_gives_positioned_diagnostics_and_changes_nothing() {
    let app = TestApp::builder().file("acme.yaml", tenant_yaml("acme", "acme-token")).spawn().await;
    let mut client = app.registry_client();
    let bad = client
        .validate_config(authed(
            pb::ValidateConfigRequest { yaml: "tenant: acme\nacess: {}\n".into(), file_name: "acme.yaml".into() },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!bad.valid);
    let found: Vec<_> = bad.diagnostics.iter().map(|d| (d.file.as_str(), d.line, d.column, d.path.as_str())).collect();
    assert!(found.contains(&("acme.yaml", 2, 1, "acess")), "{found:?}");
    assert!(bad.diagnostics.iter().any(|d| d.message.contains("missing field `access`")), "{:?}", bad.diagnostics);
    let good = client
        .validate_config(authed(
            pb::ValidateConfigRequest { yaml: tenant_yaml("zeta", "z"), file_name: "zeta.yaml".into() },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(good.valid, "{:?}", good.diagnostics);
    assert!(app.state.registry.get("zeta").is_none(), "validation serves nothing");
}

#[tokio::test]
async fn get_tenant_of_an_unknown_tenant_is_not_found() {
    let app = TestApp::builder().demo().spawn().await;
    let err = app
        .registry_client()
        .get_tenant(authed(pb::GetTenantRequest { tenant: "nobody".into() }, ADMIN_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "TENANT_NOT_FOUND");
}

#[tokio::test]
async fn audit_events_are_paginated_newest_first() {
    let app = TestApp::builder().demo().spawn().await;
    for i in 0..5 {
        let request_id = format!("r{i}");
        let event = patchbay::store::audit::NewEvent {
            tenant: if i % 2 == 0 { "demo" } else { "other" },
            caller: "token:abc",
            method: "patchbay.v1.Test/Do",
            provider: "",
            outcome: "OK",
            reason: "",
            latency_ms: 1,
            request_id: &request_id,
        };
        patchbay::store::audit::record(&app.state.db, &event).await.unwrap();
    }
    let mut client = app.registry_client();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_audit_events(authed(
                pb::ListAuditEventsRequest { tenant: "demo".into(), page_size: 2, page_token: token.clone() },
                ADMIN_TOKEN,
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.events.iter().map(|e| e.request_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["r4", "r2", "r0"]);
    let wrong_query = client
        .list_audit_events(authed(
            pb::ListAuditEventsRequest {
                tenant: "other".into(),
                page_size: 2,
                page_token: patchbay::ops::page::encode("3", "tenant=demo"),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong_query.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_ops_listener_answers_healthz_readyz_and_metrics_and_the_public_one_only_callbacks() {
    let app = TestApp::builder().demo().spawn().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(reqwest::get(app.ops_url(path)).await.unwrap().status(), 200, "{path} on the ops listener");
        assert_eq!(reqwest::get(app.http_url(path)).await.unwrap().status(), 404, "{path} is not public");
    }
}
