//! Bad input gets INVALID_ARGUMENT naming the field, never INTERNAL, and no echo of it can break
//! the answer (issue 15, item 5): NUL and other control characters, bytes that are not a
//! protobuf message, and values far longer than any real one.

mod common;

use common::{ADMIN_TOKEN, DEMO_TOKEN, TestApp, authed, bad_fields, reason};
use patchbay::proto::v1::{
    self as pb, dialer_service_client::DialerServiceClient, provisioning_service_client::ProvisioningServiceClient,
};
use tonic::{Code, codegen::http::uri::PathAndQuery};

/// The wire shape of a request whose first field (the tenant) is raw bytes, so a test can send
/// what no generated client would: bytes that are not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawTenant {
    #[prost(bytes = "vec", tag = "1")]
    tenant: Vec<u8>,
}

#[tokio::test]
async fn a_nul_in_an_order_id_or_an_audit_filter_is_invalid_argument_naming_the_field() {
    let app = TestApp::builder().demo().spawn().await;
    let mut provisioning = ProvisioningServiceClient::new(app.channel.clone());
    let req = pb::GetOrderRequest { tenant: "demo".into(), order_id: "ord\0er".into() };
    let e = provisioning.get_order(authed(req, DEMO_TOKEN)).await.unwrap_err();
    assert_eq!((e.code(), bad_fields(&e)), (Code::InvalidArgument, vec!["order_id".to_owned()]));

    let req = pb::ListAuditEventsRequest { tenant: "de\0mo".into(), ..Default::default() };
    let e = app.registry_client().list_audit_events(authed(req, ADMIN_TOKEN)).await.unwrap_err();
    assert_eq!((e.code(), bad_fields(&e)), (Code::InvalidArgument, vec!["tenant".to_owned()]));
}

#[tokio::test]
async fn bytes_that_are_not_the_methods_message_are_invalid_argument_not_internal() {
    let app = TestApp::builder().demo().spawn().await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let path = PathAndQuery::from_static("/patchbay.v1.DialerService/ListActiveLists");
    let codec = tonic_prost::ProstCodec::<RawTenant, pb::ListActiveListsResponse>::default();
    let e =
        grpc.unary(authed(RawTenant { tenant: vec![0xff, 0xfe, b'x'] }, DEMO_TOKEN), path, codec).await.unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::InvalidArgument, "MALFORMED_REQUEST"), "{e:?}");
    assert!(e.message().contains("not a valid protobuf message"), "{}", e.message());
}

#[tokio::test]
async fn a_huge_tenant_is_answered_with_a_short_error_never_echoed_whole() {
    let app = TestApp::builder().demo().spawn().await;
    let huge = "t".repeat(6_000);
    let mut dialer = DialerServiceClient::new(app.channel.clone());
    let e = dialer
        .list_active_lists(authed(
            pb::ListActiveListsRequest { tenant: huge.clone(), ..Default::default() },
            DEMO_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!((e.code(), bad_fields(&e)), (Code::InvalidArgument, vec!["tenant".to_owned()]));

    let e = app.tenant_view(&huge).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().len() <= 1024, "{} bytes", e.message().len());
    assert!(e.message().ends_with('…'), "{}", e.message());
}
