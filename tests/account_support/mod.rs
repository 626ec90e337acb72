//! Helpers of the AccountService end-to-end tests: an Alianza simulator of the test's own (on a
//! port, so it outlives a server restart), tenant files with an account trigger, typed clients.

#![allow(dead_code)] // each test binary uses a different part

use std::time::{Duration, Instant};

use patchbay::{
    account::alianza::{AlianzaSim, sim::demo},
    ops::auth::TokenHash,
    proto::v1::{self as pb, account_service_client::AccountServiceClient},
};
use tonic::transport::Channel;

use crate::common::TestApp;

/// The test tenant, its token and its Alianza partition.
pub const TENANT: &str = "acme";
pub const TOKEN: &str = "acme-token";
pub const PARTITION: &str = "acme-partition";
pub const USERNAME: &str = "crm@acme.example";
pub const PASSWORD: &str = "acme-alianza-secret";

/// A simulator of the test's own, knowing the tenant's login, seeded with the demo accounts.
pub fn vendor() -> AlianzaSim {
    let sim = AlianzaSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    sim.add_login(USERNAME, PASSWORD, PARTITION);
    sim.seed_demo(PARTITION);
    sim
}

/// `acme.yaml` with an account trigger on `api_url`; `changes` replace (or, with an empty value,
/// remove) trigger keys, or add new ones.
pub fn tenant_file(api_url: &str, changes: &[(&str, &str)]) -> String {
    let mut keys: Vec<(String, String)> = [
        ("provider", "alianza"),
        ("enabled", "true"),
        ("customer_status", "true"),
        ("synchro_console", "true"),
        ("api_url", api_url),
        ("admin_portal_url", "https://admin.alianza.com"),
        ("partition_id", PARTITION),
        ("username", USERNAME),
        ("password", PASSWORD),
        ("status_map", "{ current: ACTIVE, trial: ACTIVE }"),
        (
            "account_defaults",
            "{ time_zone: US/Eastern, regulatory_type: RESIDENTIAL, inbound_rate_plan_product_id: demo-rate-plan, \
             dialing_behavior: TEN_DIGIT, billing_cycle_day: 1 }",
        ),
        (
            "custom_sip_table",
            "{ dial_number: 101, display_name: 102, password: 103, port_number: 104, user_name: 105 }",
        ),
        ("timeout_ms", "2000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (key, value) in changes {
        match keys.iter().position(|(k, _)| k == key) {
            Some(i) if value.is_empty() => {
                keys.remove(i);
            }
            Some(i) => keys[i].1 = (*value).to_owned(),
            None => keys.push(((*key).to_owned(), (*value).to_owned())),
        }
    }
    let trigger: String = keys.iter().map(|(k, v)| format!("    {k}: {v}\n")).collect();
    format!(
        "tenant: {TENANT}\naccess:\n  tokens: [\"{}\"]\ntriggers:\n  account:\n{trigger}",
        TokenHash::of_token(TOKEN)
    )
}

/// A server serving `acme` on `sim`.
pub async fn serve(sim: &AlianzaSim, changes: &[(&str, &str)]) -> TestApp {
    TestApp::builder().file("acme.yaml", tenant_file(&sim.url(), changes)).spawn().await
}

pub fn client(app: &TestApp) -> AccountServiceClient<Channel> {
    AccountServiceClient::new(app.channel.clone())
}

/// A CRM customer whose nickname is `account_number`, status `current`.
pub fn customer(account_number: &str) -> pb::Customer {
    pb::Customer {
        id: "crm-42".into(),
        name: "Jane Smith Consulting".into(),
        nickname: account_number.into(),
        status: "current".into(),
        ..Default::default()
    }
}

/// The demo account's customer.
pub fn demo_customer() -> pb::Customer {
    customer(demo::ACCOUNT)
}

/// Waits up to `limit` for `check` to hold.
pub async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
