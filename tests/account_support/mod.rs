//! Helpers of the AccountService end-to-end tests: an Alianza simulator of the test's own (on a
//! port, so it outlives a server restart), tenant files with an account trigger, typed clients.

#![allow(dead_code)] // each test binary uses a different part

use std::time::{Duration, Instant};

use patchbay::{
    account::alianza::{AlianzaSim, sim::demo},
    ops::auth::TokenHash,
    proto::v1::{self as pb, account_service_client::AccountServiceClient},
};
use tonic::{Response, Status, transport::Channel};

use crate::common::{DEMO_TOKEN, TestApp, authed};

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

/// A CreateAccount of `number` for acme: an ADVANCED account, billing day 12, DIAL_NINE, 4 digits.
pub fn create_request(number: &str) -> pb::CreateAccountRequest {
    pb::CreateAccountRequest {
        tenant: TENANT.into(),
        customer: Some(pb::Customer { name: "New Customer".into(), ..customer(number) }),
        account_type: pb::AccountType::Advanced.into(),
        billing_cycle_day: 12,
        dialing_behavior: pb::DialingBehavior::DialNineTenDigit.into(),
        extension_length: 4,
        request_id: String::new(),
    }
}

/// A SyncSipLines of `number`.
pub fn sync_request(number: &str, mode: pb::SyncMode, dry_run: bool) -> pb::SyncSipLinesRequest {
    pb::SyncSipLinesRequest {
        tenant: TENANT.into(),
        customer: Some(customer(number)),
        mode: mode.into(),
        dry_run,
        request_id: String::new(),
    }
}

/// A SetCustomerStatus of `number` to the CRM status `crm_status`.
pub fn set_status_request(number: &str, crm_status: &str) -> pb::SetCustomerStatusRequest {
    pb::SetCustomerStatusRequest {
        tenant: TENANT.into(),
        customer: Some(pb::Customer { status: crm_status.into(), ..customer(number) }),
        request_id: String::new(),
    }
}

/// A confirmed DeleteAccount of `number`.
pub fn delete_request(number: &str, request_id: &str) -> pb::DeleteAccountRequest {
    pb::DeleteAccountRequest {
        tenant: TENANT.into(),
        customer: Some(customer(number)),
        confirm: true,
        request_id: request_id.into(),
    }
}

/// AccountService as a tenant's CRM calls it: every call carries the tenant's bearer token and
/// answers the message itself. The `*_with` methods send a request as given; the others build it
/// for the tenant's customer with that account number.
#[derive(Clone)]
pub struct Crm {
    client: AccountServiceClient<Channel>,
    tenant: &'static str,
    token: &'static str,
}

impl Crm {
    /// Tenant `acme` (see [`serve`]).
    pub fn acme(app: &TestApp) -> Self {
        Self { client: client(app), tenant: TENANT, token: TOKEN }
    }

    /// The shipped demo tenant.
    pub fn demo(app: &TestApp) -> Self {
        Self { client: client(app), tenant: "demo", token: DEMO_TOKEN }
    }

    pub async fn status(&mut self, number: &str) -> Result<pb::AccountStatus, Status> {
        self.status_of(Some(customer(number))).await
    }

    pub async fn status_of(&mut self, customer: Option<pb::Customer>) -> Result<pb::AccountStatus, Status> {
        let req = pb::GetAccountStatusRequest { tenant: self.tenant.into(), customer };
        self.client.get_account_status(authed(req, self.token)).await.map(Response::into_inner)
    }

    pub async fn create(&mut self, req: pb::CreateAccountRequest) -> Result<pb::AccountStatus, Status> {
        self.client.create_account(authed(req, self.token)).await.map(Response::into_inner)
    }

    /// CreateAccount with a deadline of `timeout`.
    pub async fn create_within(
        &mut self,
        req: pb::CreateAccountRequest,
        timeout: Duration,
    ) -> Result<pb::AccountStatus, Status> {
        let mut call = authed(req, self.token);
        call.set_timeout(timeout);
        self.client.create_account(call).await.map(Response::into_inner)
    }

    pub async fn sync(
        &mut self,
        number: &str,
        mode: pb::SyncMode,
        dry_run: bool,
    ) -> Result<pb::SyncSipLinesResponse, Status> {
        self.sync_with(pb::SyncSipLinesRequest { tenant: self.tenant.into(), ..sync_request(number, mode, dry_run) })
            .await
    }

    pub async fn sync_with(&mut self, req: pb::SyncSipLinesRequest) -> Result<pb::SyncSipLinesResponse, Status> {
        self.client.sync_sip_lines(authed(req, self.token)).await.map(Response::into_inner)
    }

    /// The rows ListSipLines shows for `number`.
    pub async fn sip_rows(&mut self, number: &str) -> Result<Vec<pb::CustomTableRow>, Status> {
        let req = pb::ListSipLinesRequest {
            tenant: self.tenant.into(),
            customer: Some(customer(number)),
            ..Default::default()
        };
        self.client.list_sip_lines(authed(req, self.token)).await.map(|r| r.into_inner().rows)
    }

    pub async fn set_status(
        &mut self,
        number: &str,
        crm_status: &str,
    ) -> Result<pb::SetCustomerStatusResponse, Status> {
        let req = set_status_request(number, crm_status);
        self.set_status_with(pb::SetCustomerStatusRequest { tenant: self.tenant.into(), ..req }).await
    }

    pub async fn set_status_with(
        &mut self,
        req: pb::SetCustomerStatusRequest,
    ) -> Result<pb::SetCustomerStatusResponse, Status> {
        self.client.set_customer_status(authed(req, self.token)).await.map(Response::into_inner)
    }

    /// A confirmed DeleteAccount of `number`.
    pub async fn delete(&mut self, number: &str, request_id: &str) -> Result<pb::DeleteAccountResponse, Status> {
        self.delete_with(pb::DeleteAccountRequest { tenant: self.tenant.into(), ..delete_request(number, request_id) })
            .await
    }

    pub async fn delete_with(&mut self, req: pb::DeleteAccountRequest) -> Result<pb::DeleteAccountResponse, Status> {
        self.client.delete_account(authed(req, self.token)).await.map(Response::into_inner)
    }
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
