//! Helpers for the ProvisioningService end-to-end tests: a tenant on the Delacon simulator,
//! typed clients, orders, and waiting on streams.

#![allow(dead_code)] // each test binary uses a different part

use std::{sync::Arc, time::Duration};

use patchbay::{
    proto::v1::{self as pb, provision_numbers_request::Who, provisioning_service_client::ProvisioningServiceClient},
    provisioning::delacon::DelaconSim,
};
use tonic::{Streaming, transport::Channel};

use crate::common::{TestApp, authed, tenant_yaml};

/// The CRM's bearer token for tenant `acme`.
pub const TOKEN: &str = "acme-crm-token";
/// acme's Delacon API key.
pub const API_KEY: &str = "acme-delacon-api-key";
/// acme's callback secret.
pub const SECRET: &str = "acme-callback-secret-0123456789abcdef";

/// acme's tenant file with a Delacon trigger on `api_url`, plus `extra` trigger lines
/// (`"    timeout_ms: 300\n"`).
pub fn tenant_file(api_url: &str, extra: &str) -> String {
    format!(
        "{}triggers:\n  provisioning:\n    provider: delacon\n    api_url: {api_url}\n    auth_token: {API_KEY}\n    \
         callback_secret: {SECRET}\n{extra}",
        tenant_yaml("acme", TOKEN)
    )
}

/// A server with tenant acme on the in-process simulator.
pub async fn spawn() -> TestApp {
    spawn_with("").await
}

pub async fn spawn_with(extra: &str) -> TestApp {
    TestApp::builder().file("acme.yaml", tenant_file("simulator", extra)).spawn().await
}

/// The in-process Delacon simulator of `app`.
pub fn sim(app: &TestApp) -> Arc<DelaconSim> {
    app.sims.get::<DelaconSim>().expect("the tenant uses `api_url: simulator`")
}

pub fn client(app: &TestApp) -> ProvisioningServiceClient<Channel> {
    ProvisioningServiceClient::new(app.channel.clone())
}

/// A valid order of `count` Japanese toll-free numbers for a new customer.
pub fn new_customer_order(request_id: &str, count: i32) -> pb::ProvisionNumbersRequest {
    pb::ProvisionNumbersRequest {
        tenant: "acme".into(),
        who: Some(Who::NewCustomer(pb::NumberCustomer {
            business_name: "Sakura Ramen".into(),
            business_category: "Restaurant".into(),
            email: "owner@sakura-ramen.example".into(),
            termination_number: "+81 3 1234 5678".into(),
            business_id: "CRM-42".into(),
        })),
        features: vec![pb::Feature::CallRecording as i32],
        region: pb::Region::Japan as i32,
        number_type: "0120".into(),
        count,
        order_summary_email: "orders@isp.example".into(),
        terms_accepted: true,
        request_id: request_id.into(),
    }
}

/// An order for an existing company.
pub fn company_order(request_id: &str, company_id: &str, count: i32) -> pb::ProvisionNumbersRequest {
    pb::ProvisionNumbersRequest {
        tenant: "acme".into(),
        who: Some(Who::CompanyId(company_id.into())),
        features: vec![],
        region: 0,
        number_type: String::new(),
        count,
        order_summary_email: String::new(),
        terms_accepted: true,
        request_id: request_id.into(),
    }
}

pub async fn provision(app: &TestApp, req: pb::ProvisionNumbersRequest) -> Result<pb::Order, tonic::Status> {
    client(app).provision_numbers(authed(req, TOKEN)).await.map(|r| r.into_inner())
}

/// An UpdateCustomer of acme's company `company_id` that changes nothing yet.
pub fn update_of(company_id: &str) -> pb::UpdateCustomerRequest {
    pb::UpdateCustomerRequest { tenant: "acme".into(), company_id: company_id.into(), ..Default::default() }
}

pub async fn update_customer(
    app: &TestApp,
    req: pb::UpdateCustomerRequest,
) -> Result<pb::UpdateCustomerResponse, tonic::Status> {
    client(app).update_customer(authed(req, TOKEN)).await.map(|r| r.into_inner())
}

/// GetRegionNumberTypes of `region` for acme.
pub async fn number_types(
    app: &TestApp,
    region: pb::Region,
) -> Result<pb::GetRegionNumberTypesResponse, tonic::Status> {
    let req = pb::GetRegionNumberTypesRequest { tenant: "acme".into(), region: region as i32 };
    client(app).get_region_number_types(authed(req, TOKEN)).await.map(|r| r.into_inner())
}

pub async fn get_order(app: &TestApp, order_id: &str) -> pb::Order {
    let req = pb::GetOrderRequest { tenant: "acme".into(), order_id: order_id.into() };
    client(app).get_order(authed(req, TOKEN)).await.unwrap().into_inner()
}

pub async fn watch(app: &TestApp, order_id: &str) -> Streaming<pb::Order> {
    let req = pb::WatchOrderRequest { tenant: "acme".into(), order_id: order_id.into() };
    client(app).watch_order(authed(req, TOKEN)).await.unwrap().into_inner()
}

/// The stream's next order, within 10 s.
pub async fn next(stream: &mut Streaming<pb::Order>) -> Option<pb::Order> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message within 10 s")
        .expect("no stream error")
}

/// Follows an order until it is final.
pub async fn until_final(app: &TestApp, order_id: &str) -> pb::Order {
    let mut stream = watch(app, order_id).await;
    let mut last = None;
    while let Some(order) = next(&mut stream).await {
        last = Some(order);
    }
    let last = last.expect("at least the current order");
    assert_ne!(last.state, pb::OrderState::Pending as i32, "the stream ended before the order was final");
    last
}

/// The states of an order's history, oldest first, with their sources.
pub fn history(order: &pb::Order) -> Vec<(pb::OrderState, String)> {
    order.history.iter().map(|e| (e.state(), e.source.clone())).collect()
}

/// POSTs a callback to `app` as Delacon would.
pub async fn post_callback(app: &TestApp, tenant: &str, secret: &str, form: &[(&str, &str)]) -> (u16, String) {
    let url = app.http_url(&format!("/callbacks/delacon/{tenant}/{secret}"));
    let resp = reqwest::Client::new().post(url).form(form).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Waits until `check` holds, polling every 50 ms, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stored state of acme's submission `request_id` (`submitting`, `unknown`, `pending`, ...).
pub async fn submission_state(app: &TestApp, request_id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT state FROM provisioning_orders WHERE tenant = 'acme' AND request_id = $1")
        .bind(request_id)
        .fetch_optional(&app.state.db)
        .await
        .unwrap()
}

/// The hash ProvisionNumbers keys a submission by, to stage one as another call would have.
pub fn request_hash(req: &pb::ProvisionNumbersRequest) -> Vec<u8> {
    use prost::Message;
    use sha2::Digest;
    sha2::Sha256::digest(req.encode_to_vec()).to_vec()
}

/// Whether a status is an expired deadline. tonic (both ends) reports one as CANCELLED "Timeout
/// expired"; grpc-go and grpcurl callers see DEADLINE_EXCEEDED.
pub fn deadline_expired(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::DeadlineExceeded
        || (status.code() == tonic::Code::Cancelled && status.message().contains("Timeout"))
}
