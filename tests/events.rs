//! Events in and out, end to end: a CRM's HTTP trigger -> patchbay's public listener ->
//! PostgreSQL -> the status follow-up -> the Alianza simulator; and a change in patchbay -> the
//! outbox -> a signed webhook at a real HTTP receiver.

mod account_support;
mod common;
mod provisioning_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use account_support::{PARTITION, TENANT, eventually, tenant_file, vendor};
use patchbay::{
    account::{alianza::sim::demo, store as account_store},
    events::receiver::WebhookReceiver,
    ops::webhooks::SigningKey,
    provisioning::delacon::{
        DelaconSim,
        sim::{CallbackResult, Completion, OrderPlan},
    },
    sim::{Fault, FaultRule},
};
use serde_json::json;

use common::TestApp;

const PATH_SECRET: &str = "acme-trigger-secret-0123456789abcdef";
const BASIC_PASSWORD: &str = "acme-basic-password-0123";
const SIGNING: &str = "whsec_cGF0Y2hiYXktdGVzdC1pbmJvdW5kLXNlY3JldC0zMmI=";
const ENDPOINT_SECRET: &str = "whsec_cGF0Y2hiYXktdGVzdC1lbmRwb2ludC1zZWNyZXQtMzI=";

/// acme's file: an Alianza account trigger on `alianza`, the in-process Delacon, four inbound
/// triggers (three status triggers, one per kind of authentication, and a SIP-table refresh) and an endpoint at `receiver` for every event.
fn events_tenant(alianza: &str, receiver: &str, endpoint_extra: &str) -> String {
    format!(
        "{}  provisioning:
    provider: delacon
    api_url: simulator
    auth_token: acme-delacon-api-key
    callback_secret: acme-callback-secret-0123456789abcdef
events:
  inbound:
    status:
      auth: {{ path_secret: {PATH_SECRET} }}
      event_id: /event_id
      timestamp: /changed_at
      customer: {{ id: /customer/id, nickname: /customer/nickname, status: /customer/status }}
      action: set_customer_status
    status-form:
      auth: {{ basic: {{ username: crm, password: {BASIC_PASSWORD} }} }}
      format: form
      customer: {{ nickname: nickname, status: status }}
      when:
        status_changed: true
        fields: [{{ path: product, in: [Hosted Voice] }}]
      action: set_customer_status
    status-signed:
      auth: {{ standard_webhooks: {{ secret: {SIGNING} }} }}
      customer: {{ nickname: customer.nickname, status: customer.status }}
      action: set_customer_status
    details:
      auth: {{ path_secret: {PATH_SECRET} }}
      event_id: /event_id
      customer: {{ nickname: /customer/nickname }}
      action: sync_sip_lines
  outbound:
    crm:
      url: {receiver}/webhooks
      secret: {ENDPOINT_SECRET}
{endpoint_extra}",
        tenant_file(alianza, &[])
    )
}

fn receiver() -> WebhookReceiver {
    WebhookReceiver::start("127.0.0.1:0".parse().unwrap(), SigningKey::parse(ENDPOINT_SECRET).unwrap(), false).unwrap()
}

/// A SIMPLer-style customer status change.
fn status_change(event_id: &str, changed_at: &str, status: &str) -> serde_json::Value {
    json!({
        "event": "customer_status_change",
        "event_id": event_id,
        "changed_at": changed_at,
        "customer": { "id": "crm-42", "name": "Jane Smith", "nickname": demo::ACCOUNT, "status": status },
    })
}

async fn post_json(app: &TestApp, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().post(app.http_url(path)).json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn status_at_vendor(sim: &patchbay::account::alianza::AlianzaSim) -> String {
    sim.account(PARTITION, demo::ACCOUNT).unwrap().status
}

async fn inbound_states(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT trigger, state FROM inbound_events ORDER BY id").fetch_all(&app.state.db).await.unwrap()
}

#[tokio::test]
async fn a_status_change_trigger_sent_three_times_while_the_vendor_is_down_is_applied_once_when_it_is_back() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("/v2/partition"));
    let path = format!("/triggers/acme/status/{PATH_SECRET}");
    let change = status_change("evt-1", "2026-12-01T10:00:00Z", "suspended");

    let (status, first) = post_json(&app, &path, &change).await;
    assert_eq!((status, first["state"].as_str()), (202, Some("accepted")), "{first}");
    assert_eq!(first["desired_status"], "DISABLED");
    for _ in 0..2 {
        let (status, again) = post_json(&app, &path, &change).await;
        assert_eq!((status, again["state"].as_str()), (200, Some("duplicate")), "{again}");
        assert_eq!(again["event"], first["event"], "the first event's id");
    }
    // Stored before 2xx, and pending while the vendor is down.
    let intent = account_store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().unwrap();
    assert_eq!((intent.state.as_str(), intent.generation), ("pending", 1));
    assert_eq!(status_at_vendor(&sim).await, "ACTIVE");

    sim.faults().clear();
    eventually(Duration::from_secs(20), "the follow-up delivers the status", async || {
        status_at_vendor(&sim).await == "DISABLED"
    })
    .await;
    assert_eq!(sim.calls().get("account.update"), 1, "applied once");
    let duplicates: i32 =
        sqlx::query_scalar("SELECT duplicates FROM inbound_events").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(duplicates, 2);
    // And the CRM hears of it.
    eventually(Duration::from_secs(10), "customer_status.applied arrives", async || {
        hook.received().iter().any(|r| r.event_type == "customer_status.applied")
    })
    .await;
    let applied = hook.received().into_iter().find(|r| r.event_type == "customer_status.applied").unwrap();
    assert_eq!(applied.body["data"]["account_number"], demo::ACCOUNT);
    assert_eq!(applied.body["data"]["status"], "DISABLED");
}

#[tokio::test]
async fn an_older_change_sent_after_a_newer_one_is_stored_superseded_and_does_not_win() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    let path = format!("/triggers/acme/status/{PATH_SECRET}");
    let (status, newer) = post_json(&app, &path, &status_change("evt-2", "2026-12-01T10:05:00Z", "suspended")).await;
    assert_eq!((status, newer["state"].as_str()), (202, Some("accepted")));
    let (status, older) = post_json(&app, &path, &status_change("evt-1", "2026-12-01T10:00:00Z", "current")).await;
    assert_eq!((status, older["state"].as_str()), (202, Some("superseded")), "{older}");
    assert!(older["reason"].as_str().unwrap().contains("newer change"), "{older}");
    eventually(Duration::from_secs(20), "the newer status is applied", async || {
        account_store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().is_some_and(|i| i.state == "applied")
    })
    .await;
    assert_eq!(status_at_vendor(&sim).await, "DISABLED", "the older `current` did not win");
    let intent = account_store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().unwrap();
    assert_eq!(intent.generation, 1, "the superseded event recorded no desire");
}

#[tokio::test]
async fn a_wrong_secret_bad_credentials_a_bad_signature_a_stale_timestamp_and_a_missing_field_are_clear_4xx() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    let change = status_change("evt-1", "2026-12-01T10:00:00Z", "suspended");
    let http = reqwest::Client::new();

    // A path secret: wrong, missing, or the wrong tenant: 404 whichever.
    for path in [
        "/triggers/acme/status/acme-trigger-secret-0123456789abcdeX",
        "/triggers/acme/status",
        "/triggers/nobody/status/x",
    ] {
        let (status, body) = post_json(&app, path, &change).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("no trigger at this URL"), "{body}");
    }

    // Basic: wrong password.
    let r = http
        .post(app.http_url("/triggers/acme/status-form"))
        .basic_auth("crm", Some("not-the-password-at-all"))
        .form(&[("nickname", demo::ACCOUNT), ("status", "suspended"), ("product", "Hosted Voice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"patchbay\"");

    // Standard Webhooks: a bad signature, then a good signature on a stale timestamp.
    let key = SigningKey::parse(SIGNING).unwrap();
    let body = serde_json::to_vec(&json!({"customer": {"nickname": demo::ACCOUNT, "status": "suspended"}})).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let send_signed = |ts: i64, signature: String| {
        http.post(app.http_url("/triggers/acme/status-signed"))
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body.clone())
            .send()
    };
    let r = send_signed(now, SigningKey::generate().sign("msg_1", now, &body)).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().await.unwrap().contains("no `v1,` signature"));
    let stale = now - 600;
    let r = send_signed(stale, key.sign("msg_1", stale, &body)).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().await.unwrap().contains("away from this server's clock"));

    // Authenticated, but the body lacks the mapped status: 422 naming it, kept for the operator.
    let mut no_status = change.clone();
    no_status["customer"].as_object_mut().unwrap().remove("status");
    let (status, body) = post_json(&app, &format!("/triggers/acme/status/{PATH_SECRET}"), &no_status).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "customer.status: the body has no value at `/customer/status`");
    // Not JSON at all: 400.
    let r =
        http.post(app.http_url(&format!("/triggers/acme/status/{PATH_SECRET}"))).body("{oops").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Nothing applied; only the two authenticated bad bodies are kept.
    assert!(account_store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().is_none());
    assert_eq!(inbound_states(&app).await, [("status".into(), "invalid".into()), ("status".into(), "invalid".into())]);
    assert_eq!(sim.calls().get("account.update"), 0);
    let metrics = reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap();
    for line in
        [r#"patchbay_inbound_events_total{state="refused"} 6"#, r#"patchbay_inbound_events_total{state="invalid"} 2"#]
    {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_signed_trigger_and_a_form_trigger_with_conditions_apply_only_what_their_conditions_allow() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    let http = reqwest::Client::new();
    let form = |status: &'static str, product: &'static str| {
        http.post(app.http_url("/triggers/acme/status-form"))
            .basic_auth("crm", Some(BASIC_PASSWORD))
            .form(&[("nickname", demo::ACCOUNT), ("status", status), ("product", product)])
            .send()
    };
    let decided = async |r: reqwest::Response| -> (u16, String) {
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        (status, body["state"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(decided(form("suspended", "Fibre").await.unwrap()).await, (202, "skipped".into()), "another product");
    assert_eq!(
        decided(form("suspended", "hosted voice").await.unwrap()).await,
        (202, "skipped".into()),
        "status unchanged"
    );
    assert_eq!(decided(form("current", "Hosted Voice").await.unwrap()).await, (202, "accepted".into()));
    eventually(Duration::from_secs(20), "applied", async || {
        account_store::intent(&app.state.db, TENANT, demo::ACCOUNT).await.unwrap().is_some_and(|i| i.state == "applied")
    })
    .await;

    // Standard Webhooks: the webhook-id is the event id.
    let key = SigningKey::parse(SIGNING).unwrap();
    let body = serde_json::to_vec(&json!({"customer": {"nickname": demo::ACCOUNT, "status": "closed"}})).unwrap();
    for _ in 0..2 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let r = http
            .post(app.http_url("/triggers/acme/status-signed"))
            .header("webhook-id", "msg_closed")
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", key.sign("msg_closed", now, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    eventually(Duration::from_secs(20), "the signed change is applied", async || {
        status_at_vendor(&sim).await == "DISABLED"
    })
    .await;
    let states = inbound_states(&app).await;
    let count = |s: &str| states.iter().filter(|(_, st)| st == s).count();
    assert_eq!((count("skipped"), count("accepted"), states.len()), (2, 2, 4), "{states:?}");
}

#[tokio::test]
async fn an_order_completed_by_delacon_s_callback_reaches_the_endpoint_once_signed_after_it_was_down() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder()
        .file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "      events: [order.state_changed]\n"))
        .spawn()
        .await;
    let delacon = app.sims.get::<DelaconSim>().unwrap();
    delacon.plan_order(OrderPlan::Wait { result: CallbackResult::Ok, when: Completion::Manual });
    let order = provisioning_order(&app).await;
    eventually(Duration::from_secs(10), "the pending order's webhook", async || hook.received().len() == 1).await;

    hook.set_down(true);
    assert_eq!(delacon.complete(&order).await, Some(true));
    eventually(Duration::from_secs(10), "an attempt fails while the endpoint is down", async || {
        let failed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbound_deliveries WHERE state = 'pending' AND attempts > 0")
                .fetch_one(&app.state.db)
                .await
                .unwrap();
        failed == 1
    })
    .await;
    hook.set_down(false);
    eventually(Duration::from_secs(20), "the retry delivers it", async || hook.received().len() == 2).await;
    let got = hook.received();
    let completed = &got[1];
    assert!(completed.signature_valid);
    assert_eq!(completed.event_type, "order.state_changed");
    assert_eq!(completed.body["data"]["state"], "completed");
    assert_eq!(completed.body["data"]["order_id"], order);
    assert_eq!(completed.body["data"]["source"], "callback");
    let rows: Vec<(String, i32)> = sqlx::query_as("SELECT state, attempts FROM outbound_deliveries ORDER BY id")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows, [("delivered".into(), 1), ("delivered".into(), 2)]);
    // The callback sent again changes nothing and sends nothing.
    let form = [("OrderID", order.as_str()), ("Result", "OK"), ("Message", "again")];
    let (status, _) = provisioning_support::post_callback(&app, "acme", provisioning_support::SECRET, &form).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.received().len(), 2);
}

/// Places a Delacon order for acme that waits for its callback; its order id.
async fn provisioning_order(app: &TestApp) -> String {
    use patchbay::proto::v1::{self as pb, provisioning_service_client::ProvisioningServiceClient};
    let req = provisioning_support::new_customer_order("order-1", 1);
    let mut client = ProvisioningServiceClient::new(app.channel.clone());
    let order = client.provision_numbers(common::authed(req, account_support::TOKEN)).await.unwrap().into_inner();
    assert_eq!(order.state(), pb::OrderState::Pending);
    order.order_id
}

#[tokio::test]
async fn sip_lines_synced_carries_the_passwords_only_to_an_endpoint_that_asks_for_them() {
    use patchbay::proto::v1 as pb;
    let sim = vendor();
    let (plain, with_passwords) = (receiver(), receiver());
    let extra = format!(
        "      events: [sip_lines.synced]\n    provisioning-system:\n      url: {}/webhooks\n      secret: {ENDPOINT_SECRET}\n      events: [sip_lines.synced]\n      include_passwords: true\n",
        with_passwords.url()
    );
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &plain.url(), &extra)).spawn().await;
    let synced = account_support::Crm::acme(&app).sync(demo::ACCOUNT, pb::SyncMode::Full, false).await.unwrap();
    assert!(!synced.added.is_empty());
    eventually(Duration::from_secs(10), "both endpoints get the sync", async || {
        plain.received().len() == 1 && with_passwords.received().len() == 1
    })
    .await;
    let (a, b) = (&plain.received()[0], &with_passwords.received()[0]);
    assert_eq!(a.webhook_id, b.webhook_id, "one event, one id at every endpoint");
    let line = |r: &patchbay::events::receiver::Received| r.body["data"]["added"][0].clone();
    assert!(line(a).get("sip_password").is_none(), "{}", line(a));
    assert!(line(b)["sip_password"].as_str().is_some_and(|p| !p.is_empty()), "{}", line(b));
    assert_eq!(line(a)["sip_username"], line(b)["sip_username"]);
}

/// The CRM's "customer details changed" trigger for `nickname`.
fn details_change(event_id: &str, nickname: &str) -> serde_json::Value {
    json!({ "event": "customer_details_change", "event_id": event_id, "customer": { "nickname": nickname } })
}

async fn sip_rows(app: &TestApp, number: &str) -> usize {
    account_store::rows(&mut app.state.db.acquire().await.unwrap(), TENANT, number).await.unwrap().len()
}

async fn refresh_state(app: &TestApp, number: &str) -> Option<(String, String)> {
    account_store::refresh_state(&app.state.db, TENANT, number).await.unwrap()
}

#[tokio::test]
async fn a_sync_sip_lines_trigger_refreshes_the_sip_table_once_the_vendor_is_back_and_reports_the_lines() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("/v2/partition"));
    let path = format!("/triggers/acme/details/{PATH_SECRET}");
    let change = details_change("evt-d1", demo::ACCOUNT);

    let (status, first) = post_json(&app, &path, &change).await;
    assert_eq!((status, first["state"].as_str()), (202, Some("accepted")), "{first}");
    assert_eq!((first["action"].as_str(), first["sync_mode"].as_str()), (Some("sync_sip_lines"), Some("FULL")));
    let (status, again) = post_json(&app, &path, &change).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("duplicate")), "{again}");
    // Stored with the event, nothing written while the vendor is down.
    eventually(Duration::from_secs(10), "the first try fails and is kept for a retry", async || {
        refresh_state(&app, demo::ACCOUNT).await.is_some_and(|(state, error)| state == "pending" && !error.is_empty())
    })
    .await;
    assert_eq!(sip_rows(&app, demo::ACCOUNT).await, 0);

    sim.faults().clear();
    eventually(Duration::from_secs(20), "the refresh runs once the vendor is back", async || {
        refresh_state(&app, demo::ACCOUNT).await.is_some_and(|(state, _)| state == "applied")
    })
    .await;
    // The demo account's lines, without its speed-dial key (a key has no SIP registration).
    let vendor_lines = sim.lines(PARTITION, demo::ACCOUNT).iter().filter(|l| l.line_type != "SpeedDialUser").count();
    assert!(vendor_lines > 0);
    assert_eq!(sip_rows(&app, demo::ACCOUNT).await, vendor_lines, "the table equals the vendor's lines");
    eventually(Duration::from_secs(10), "sip_lines.synced arrives", async || {
        hook.received().iter().any(|r| r.event_type == "sip_lines.synced")
    })
    .await;
    let synced = hook.received().into_iter().find(|r| r.event_type == "sip_lines.synced").unwrap();
    assert_eq!(synced.body["data"]["added"].as_array().map(Vec::len), Some(vendor_lines), "{}", synced.body);
    assert!(synced.body["data"]["added"][0].get("sip_password").is_none(), "no passwords unless asked");

    // A later change with nothing new at the vendor syncs again and writes (and reports) nothing.
    let (status, later) = post_json(&app, &path, &details_change("evt-d2", demo::ACCOUNT)).await;
    assert_eq!((status, later["state"].as_str()), (202, Some("accepted")), "{later}");
    eventually(Duration::from_secs(10), "the second refresh is applied", async || {
        let lists = sim.calls().get("deviceline.list");
        lists >= 2 && refresh_state(&app, demo::ACCOUNT).await.is_some_and(|(state, _)| state == "applied")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reported = hook.received().iter().filter(|r| r.event_type == "sip_lines.synced").count();
    assert_eq!(reported, 1, "an unchanged table is not reported again");
}

#[tokio::test]
async fn a_sync_sip_lines_trigger_for_an_account_the_vendor_does_not_have_ends_rejected_with_the_reason() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    let path = format!("/triggers/acme/details/{PATH_SECRET}");
    let (status, body) = post_json(&app, &path, &details_change("evt-x", "999000999")).await;
    assert_eq!((status, body["state"].as_str()), (202, Some("accepted")), "{body}");
    eventually(Duration::from_secs(10), "the refresh is rejected", async || {
        refresh_state(&app, "999000999").await.is_some_and(|(state, _)| state == "rejected")
    })
    .await;
    let (_, error) = refresh_state(&app, "999000999").await.unwrap();
    assert!(error.contains("no account"), "{error}");
    assert_eq!(sip_rows(&app, "999000999").await, 0);
}

#[tokio::test]
async fn a_tenant_file_that_breaks_while_served_is_reported_once_as_tenant_reload_failed() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    let file = app.providers_dir().join("acme.yaml");
    let good = std::fs::read_to_string(&file).unwrap();
    for _ in 0..2 {
        let reloaded = app.next_reload();
        std::fs::write(&file, good.replace("partition_id: acme-partition", "partition_id: [oops]")).unwrap();
        app.state.registry.reload_all();
        reloaded.await;
    }
    eventually(Duration::from_secs(10), "tenant.reload_failed arrives", async || {
        hook.received().iter().any(|r| r.event_type == "tenant.reload_failed")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failed: Vec<_> = hook.received().into_iter().filter(|r| r.event_type == "tenant.reload_failed").collect();
    assert_eq!(failed.len(), 1, "the same problems are reported once");
    let problems = failed[0].body["data"]["problems"].as_array().unwrap();
    assert!(problems[0].as_str().unwrap().contains("triggers.account.partition_id"), "{problems:?}");
}

#[tokio::test]
async fn refused_vendor_credentials_are_reported_as_tenant_credentials_refused() {
    let sim = vendor();
    let hook = receiver();
    let file =
        events_tenant(&sim.url(), &hook.url(), "").replace("password: acme-alianza-secret", "password: wrong-password");
    let app = TestApp::builder().file("acme.yaml", file).spawn().await;
    for _ in 0..3 {
        let err = account_support::Crm::acme(&app).status(demo::ACCOUNT).await.unwrap_err();
        assert_eq!(common::reason(&err), "VENDOR_AUTH_FAILED");
    }
    eventually(Duration::from_secs(10), "tenant.credentials_refused arrives", async || {
        hook.received().iter().any(|r| r.event_type == "tenant.credentials_refused")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused: Vec<_> =
        hook.received().into_iter().filter(|r| r.event_type == "tenant.credentials_refused").collect();
    assert_eq!(refused.len(), 1, "at most one report an hour");
    assert_eq!(refused[0].body["data"]["provider"], "alianza");
    let text = refused[0].body.to_string();
    assert!(!text.contains("wrong-password"), "{text}");
}

#[tokio::test]
async fn patchbay_validate_names_each_bad_events_key_with_its_position() {
    let text = "tenant: acme
access:
  tokens: [\"sha256:2d7b46a4c2a3e5e0f1d7c1a7c4e1c8e0a0f2b1c3d4e5f60718293a4b5c6d7e8f\"]
events:
  inbound:
    Bad Name:
      auth: { path_secret: short }
      customer: { status: /s }
      action: set_customer_status
    ok:
      auth: { path_secret: acme-trigger-secret-0123456789abcdef, basic: { username: a, password: b } }
      customer: { status: \"customer..status\" }
      action: set_customer_status
      sync_mode: add_only
  outbound:
    crm:
      url: http://example.com/hook
      secret: not-a-whsec
      events: [order.changed]
";
    let diagnostics = patchbay::registry::file::validate(
        "providers.d/acme.yaml",
        "acme",
        text.as_bytes(),
        &patchbay::app::trigger_areas(),
        &patchbay::registry::secrets::SystemSecrets,
    )
    .err()
    .expect("problems");
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    let has = |needle: &str| assert!(lines.iter().any(|l| l.contains(needle)), "{needle} in {lines:#?}");
    has("providers.d/acme.yaml:6:5: events.inbound.Bad Name: a trigger name is part of its URL");
    has("events.inbound.ok.auth: set exactly one of");
    has("events.inbound.ok.customer.status: `customer..status`: a dotted path has no empty parts");
    has("events.inbound.ok.action: `set_customer_status` needs the tenant's `triggers.account`");
    has("events.inbound.ok.sync_mode: only `sync_sip_lines` syncs");
    has("providers.d/acme.yaml:17:12: events.outbound.crm.url: plain `http://` only to a loopback or private address");
    has("events.outbound.crm.secret: a Standard Webhooks secret starts with `whsec_`");
    has("providers.d/acme.yaml:19:16: events.outbound.crm.events[0]: unknown event `order.changed`");
}

#[tokio::test]
async fn registry_service_lists_inbound_events_and_deliveries_by_page_and_state_and_resends_a_failed_delivery() {
    use patchbay::proto::v1 as pb;
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    let path = format!("/triggers/acme/status/{PATH_SECRET}");
    for (i, status) in ["suspended", "current", "suspended"].into_iter().enumerate() {
        let at = format!("2026-12-01T10:0{i}:00Z");
        assert_eq!(post_json(&app, &path, &status_change(&format!("evt-{i}"), &at, status)).await.0, 202);
    }
    let mut no_status = status_change("evt-x", "2026-12-01T11:00:00Z", "x");
    no_status["customer"].as_object_mut().unwrap().remove("status");
    assert_eq!(post_json(&app, &path, &no_status).await.0, 422);

    let mut registry = app.registry_client();
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let req = pb::ListInboundEventsRequest {
            tenant: "acme".into(),
            page_size: 2,
            page_token: token,
            ..Default::default()
        };
        let page = registry.list_inbound_events(common::authed(req, common::ADMIN_TOKEN)).await.unwrap().into_inner();
        seen.extend(page.events);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let states: Vec<&str> = seen.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(states, ["invalid", "accepted", "accepted", "accepted"], "newest first");
    assert!(seen[0].reason.contains("customer.status"), "{:?}", seen[0]);
    assert_eq!(seen[1].account_number, demo::ACCOUNT);
    let req = pb::ListInboundEventsRequest { tenant: "acme".into(), state: "invalid".into(), ..Default::default() };
    assert_eq!(
        registry.list_inbound_events(common::authed(req, common::ADMIN_TOKEN)).await.unwrap().into_inner().events.len(),
        1
    );
    let req = pb::ListInboundEventsRequest { tenant: "acme".into(), state: "lost".into(), ..Default::default() };
    let err = registry.list_inbound_events(common::authed(req, common::ADMIN_TOKEN)).await.unwrap_err();
    assert_eq!(common::bad_fields(&err), ["state"]);

    // A delivery whose endpoint refuses it: resent by the operator once the endpoint is fixed.
    // (Statuses that arrive while an earlier one is on its way are delivered together: one or more
    // customer_status.applied webhooks.)
    let db = app.state.db.clone();
    eventually(Duration::from_secs(20), "the status webhooks arrive", async || {
        let intent_done =
            account_store::intent(&db, TENANT, demo::ACCOUNT).await.unwrap().is_some_and(|i| i.state == "applied");
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbound_deliveries WHERE state <> 'delivered'")
            .fetch_one(&db)
            .await
            .unwrap();
        intent_done && pending == 0 && !hook.received().is_empty()
    })
    .await;
    let req = pb::ListWebhookDeliveriesRequest { tenant: "acme".into(), ..Default::default() };
    let deliveries = registry
        .list_webhook_deliveries(common::authed(req, common::ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert!(deliveries.iter().all(|d| d.state == "delivered" && d.attempts == 1 && d.webhook_id.starts_with("msg_")));
    let first = deliveries.last().unwrap().clone();
    let again = registry
        .resend_webhook_delivery(common::authed(
            pb::ResendWebhookDeliveryRequest { tenant: "acme".into(), delivery_id: first.id },
            common::ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.state.as_str(), again.attempts), ("pending", 0));
    eventually(Duration::from_secs(10), "the re-sent delivery is delivered again", async || {
        let (state, attempts): (String, i32) =
            sqlx::query_as("SELECT state, attempts FROM outbound_deliveries WHERE id = $1")
                .bind(first.id)
                .fetch_one(&db)
                .await
                .unwrap();
        state == "delivered" && attempts == 1
    })
    .await;
    assert_eq!(
        hook.posts() as usize,
        deliveries.len() + 1,
        "one more POST, the same webhook-id (deduped by the receiver)"
    );
    let err = registry
        .resend_webhook_delivery(common::authed(
            pb::ResendWebhookDeliveryRequest { tenant: "other".into(), delivery_id: first.id },
            common::ADMIN_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(common::reason(&err), "DELIVERY_NOT_FOUND", "another tenant's delivery is not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_deliver_each_webhook_once_between_them() {
    use patchbay::platform::events::{self as outbox_events, Event, EventType};
    let sim = vendor();
    let hook = receiver();
    let database = common::fresh_database().await;
    let file = events_tenant(&sim.url(), &hook.url(), "      events: [order.state_changed]\n");
    let first = TestApp::builder().file("acme.yaml", file.clone()).database(database.clone()).spawn().await;
    let second = TestApp::builder().file("acme.yaml", file).database(database).spawn().await;
    // 400 events committed in one transaction and announced to neither replica: both find them
    // at their next poll and compete for every one.
    let tenant = first.state.registry.get(TENANT).unwrap();
    let mut tx = first.state.db.begin().await.unwrap();
    for i in 0..400 {
        let event = Event::new(EventType::OrderStateChanged, json!({ "order_id": format!("o-{i}") }));
        assert!(outbox_events::emit(&mut tx, &tenant, &event).await.unwrap());
    }
    tx.commit().await.unwrap();
    eventually(Duration::from_secs(30), "every event delivered", async || hook.received().len() == 400).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.posts(), 400, "no webhook was sent twice");
    let owners: i64 = sqlx::query_scalar("SELECT count(*) FROM outbound_deliveries WHERE state = 'delivered'")
        .fetch_one(&second.state.db)
        .await
        .unwrap();
    assert_eq!(owners, 400);
}

#[tokio::test]
async fn an_export_that_ends_is_reported_once_as_export_finished_with_its_counts() {
    use patchbay::proto::v1::{
        self as pb, dialer_service_client::DialerServiceClient, export_leads_request::Part, export_target::List,
    };
    let hook = receiver();
    let demo = common::demo_yaml().replace("http://127.0.0.1:8089/webhooks", &format!("{}/webhooks", hook.url()));
    let demo = demo.replace(
        &format!("secret: ${{env:DEMO_WEBHOOK_SECRET:-{}}}", patchbay::events::receiver::DEMO_SECRET),
        &format!("secret: {ENDPOINT_SECRET}"),
    );
    let app = TestApp::builder().file("demo.yaml", demo).spawn().await;
    let leads: Vec<pb::Lead> = (0..20)
        .map(|i| pb::Lead { phone_number: format!("555{i:07}"), first_name: format!("Lead {i}"), ..Default::default() })
        .collect();
    let msgs = vec![
        pb::ExportLeadsRequest {
            tenant: "demo".into(),
            request_id: "export-1".into(),
            part: Some(Part::Target(pb::ExportTarget { list: Some(List::ExistingListId("20042018".into())) })),
        },
        pb::ExportLeadsRequest { part: Some(Part::Batch(pb::LeadBatch { leads })), ..Default::default() },
    ];
    let mut client = DialerServiceClient::new(app.channel.clone());
    for _ in 0..2 {
        let stream = tokio_stream::iter(msgs.clone());
        let answer = client.export_leads(common::authed(stream, common::DEMO_TOKEN)).await.unwrap().into_inner();
        assert_eq!(answer.accepted, 20);
    }
    eventually(Duration::from_secs(10), "export.finished arrives", async || {
        hook.received().iter().any(|r| r.event_type == "export.finished")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let finished: Vec<_> = hook.received().into_iter().filter(|r| r.event_type == "export.finished").collect();
    assert_eq!(finished.len(), 1, "the replay that ended the same way is the same event");
    let data = &finished[0].body["data"];
    assert_eq!((data["request_id"].as_str(), data["list_id"].as_str()), (Some("export-1"), Some("20042018")));
    assert_eq!(
        (data["leads"].as_u64(), data["accepted"].as_u64(), data["rejected"].as_u64()),
        (Some(20), Some(20), Some(0))
    );
}

#[tokio::test]
async fn a_status_the_vendor_refuses_is_reported_as_customer_status_rejected_with_the_reason() {
    let sim = vendor();
    let hook = receiver();
    let app = TestApp::builder().file("acme.yaml", events_tenant(&sim.url(), &hook.url(), "")).spawn().await;
    let err = account_support::Crm::acme(&app).set_status("404404404", "current").await.unwrap_err();
    assert_eq!(common::reason(&err), "ACCOUNT_NOT_ENABLED");
    eventually(Duration::from_secs(10), "customer_status.rejected arrives", async || {
        hook.received().iter().any(|r| r.event_type == "customer_status.rejected")
    })
    .await;
    let rejected = hook.received().into_iter().find(|r| r.event_type == "customer_status.rejected").unwrap();
    assert_eq!(rejected.body["data"]["account_number"], "404404404");
    assert_eq!(rejected.body["data"]["status"], "ACTIVE");
    assert!(!rejected.body["data"]["error"].as_str().unwrap().is_empty(), "{}", rejected.body);
}
