//! Caller authentication end to end, on AccountService/GetAccountStatus over real gRPC: who may act
//! for which tenant, and that no answer reveals whether another tenant exists.

mod account_support;
mod common;

use account_support::{TENANT, TOKEN, client, demo_customer, tenant_file};
use common::{DEMO_TOKEN, TestApp, authed, bad_fields, reason};
use patchbay::proto::v1 as pb;
use tonic::Code;

fn request(tenant: &str) -> pb::GetAccountStatusRequest {
    pb::GetAccountStatusRequest { tenant: tenant.into(), customer: Some(demo_customer()) }
}

/// The demo tenant and `acme`, both on the in-process simulator.
async fn two_tenants() -> TestApp {
    TestApp::builder().demo().file("acme.yaml", tenant_file("simulator", &[])).spawn().await
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let app = two_tenants().await;
    let err = client(&app).get_account_status(request("demo")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(reason(&err), "MISSING_TOKEN");
}

#[tokio::test]
async fn a_wrong_token_is_unauthenticated() {
    let app = two_tenants().await;
    let err = client(&app).get_account_status(authed(request("demo"), "not-a-token-anyone-accepts")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(reason(&err), "INVALID_TOKEN");
}

#[tokio::test]
async fn another_tenants_valid_token_is_permission_denied_alike_for_existing_and_missing_tenants() {
    let app = two_tenants().await;
    let mut c = client(&app);
    // acme's token, for demo (which exists) and for nobody (which does not).
    let existing = c.get_account_status(authed(request("demo"), TOKEN)).await.unwrap_err();
    let missing = c.get_account_status(authed(request("nobody"), TOKEN)).await.unwrap_err();
    for err in [&existing, &missing] {
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(reason(err), "TENANT_ACCESS_DENIED");
    }
    // Same words too: only the tenant the caller named differs.
    assert_eq!(existing.message().replace("demo", "X"), missing.message().replace("nobody", "X"));
    // And the other way round: the demo token cannot act for acme.
    let err = c.get_account_status(authed(request(TENANT), DEMO_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_empty_tenant_is_invalid_argument_on_the_tenant_field() {
    let app = two_tenants().await;
    let err = client(&app).get_account_status(authed(request(""), TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), ["tenant"]);
}

#[tokio::test]
async fn the_right_token_is_served() {
    let app = two_tenants().await;
    let panel = client(&app).get_account_status(authed(request(TENANT), TOKEN)).await.unwrap().into_inner();
    assert_eq!(panel.sip_lines.len(), 3);
}
