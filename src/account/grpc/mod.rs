//! AccountService: the gRPC edge of the account area. Generated types stop in this folder:
//! [`request`] holds the field rules (proto in, domain out), [`convert`] the way back.
//!
//! Every call: authenticate for the tenant, find its enabled account trigger, check the feature
//! switch (`customer_status` / `synchro_console`), validate the whole request (every bad field at
//! once), and only then call the vendor. Mutations run inside their idempotency key and audit row.

mod convert;
mod request;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tonic::{Request, Response, Status};

use super::{
    area::AccountArea,
    provider::{AccountProvider, ProviderError},
    reconciler::{self, Delivery, DeliveryError},
    settings::{AccountSettings, SipTable},
    sip_refresh::{self, SyncError, SyncTarget},
    sip_sync::SyncMode,
    store,
};
use convert::*;
pub(crate) use request::account_number;
use request::*;

use crate::{
    ops::{ApiError, Violations, page},
    platform::{AppState, TenantCall},
    proto::v1::{self as pb, account_service_server::AccountService},
};

/// The AccountService implementation.
#[derive(Clone)]
pub struct AccountGrpc {
    state: AppState,
}

impl AccountGrpc {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Authenticates, finds the tenant's enabled trigger and checks the feature switch.
    fn begin<T>(&self, req: &Request<T>, tenant: &str, feature: Feature) -> Result<Ctx, ApiError> {
        let edge = self.state.begin::<AccountArea, _>(req, tenant)?;
        let settings = Arc::clone(&edge.trigger.settings);
        edge.require(
            feature.key(),
            match feature {
                Feature::CustomerStatus => settings.customer_status,
                Feature::SynchroConsole => settings.synchro_console,
            },
        )?;
        let provider = Arc::clone(&edge.trigger.inner.provider);
        Ok(Ctx { call: edge.call, settings, provider })
    }
}

/// The CRM page's two switches.
#[derive(Debug, Clone, Copy)]
enum Feature {
    CustomerStatus,
    SynchroConsole,
}

impl Feature {
    fn key(self) -> &'static str {
        match self {
            Self::CustomerStatus => "customer_status",
            Self::SynchroConsole => "synchro_console",
        }
    }
}

/// An authorised call with the tenant's trigger.
#[derive(Clone)]
struct Ctx {
    call: TenantCall,
    settings: Arc<AccountSettings>,
    provider: Arc<dyn AccountProvider>,
}

impl Ctx {
    fn tenant(&self) -> &str {
        &self.call.tenant.id
    }

    fn sip_table(&self) -> Result<SipTable, ApiError> {
        self.settings.sip_table.ok_or_else(|| {
            ApiError::failed_precondition(
                "SIP_TABLE_NOT_CONFIGURED",
                format!("tenant `{}` declares no custom_sip_table in its account trigger", self.tenant()),
            )
        })
    }
}

fn db(context: &'static str) -> impl Fn(sqlx::Error) -> ApiError {
    move |e| ApiError::database(context, &e)
}

impl AccountGrpc {
    /// A sync, as sip_refresh.rs does it for every caller.
    async fn sync(
        &self,
        ctx: &Ctx,
        number: &str,
        mode: SyncMode,
        dry_run: bool,
    ) -> Result<pb::SyncSipLinesResponse, ApiError> {
        let table = ctx.sip_table()?;
        let to = SyncTarget { db: &self.state.db, outbox: &self.state.outbox, tenant: &ctx.call.tenant, table };
        let plan = sip_refresh::sync(&to, ctx.provider.as_ref(), number, mode, dry_run).await?;
        Ok(sync_response(plan, &table, dry_run))
    }

    /// A replayed sync answer, its SIP passwords (never kept in the idempotency store) filled in
    /// from the stored table as it is now. Lines no longer in the table keep an empty password.
    async fn with_stored_passwords(
        &self,
        ctx: &Ctx,
        number: &str,
        mut resp: pb::SyncSipLinesResponse,
    ) -> Result<pb::SyncSipLinesResponse, ApiError> {
        let table = ctx.sip_table()?;
        let mut conn = self.state.db.acquire().await.map_err(db("reading the SIP table"))?;
        let rows = store::rows(&mut conn, ctx.tenant(), number).await.map_err(db("reading the SIP table"))?;
        let passwords: HashMap<&str, &str> = rows
            .iter()
            .filter_map(|r| r.fields.get(&table.password).map(|p| (r.sip_username.as_str(), p.as_str())))
            .collect();
        for line in sync_lines_mut(&mut resp) {
            if let Some(password) = passwords.get(line.sip_username.as_str()) {
                (*password).clone_into(&mut line.sip_password);
            }
        }
        Ok(resp)
    }
}

#[tonic::async_trait]
impl AccountService for AccountGrpc {
    async fn get_account_status(
        &self,
        req: Request<pb::GetAccountStatusRequest>,
    ) -> Result<Response<pb::AccountStatus>, Status> {
        let ctx = self.begin(&req, &req.get_ref().tenant, Feature::CustomerStatus)?;
        let mut v = Violations::new();
        let number = account_number(req.get_ref().customer.as_ref(), &ctx.settings.account_number_field, &mut v);
        v.into_result()?;
        let panel = ctx.provider.account_panel(&number).await.map_err(ApiError::from)?;
        Ok(Response::new(status_pb(panel.account, panel.product_plans, panel.sip_lines, &ctx.settings)))
    }

    async fn create_account(
        &self,
        req: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::AccountStatus>, Status> {
        let ctx = self.begin(&req, &req.get_ref().tenant, Feature::SynchroConsole)?;
        let req = req.into_inner();
        let provider = ctx.provider.name();
        let new = ctx.call.checked(&self.state, provider, &req.request_id, new_account(&req, &ctx.settings)).await?;
        let run_ctx = ctx.clone();
        let answer = ctx
            .call
            .mutate(&self.state, provider, &req.request_id, &req, move || async move {
                let ctx = run_ctx;
                let account = ctx.provider.create_account(&new).await?;
                tracing::info!(tenant = ctx.tenant(), account = %account.number, "account created");
                Ok(status_pb(account, Vec::new(), Vec::new(), &ctx.settings))
            })
            .await?;
        Ok(Response::new(answer))
    }

    async fn sync_sip_lines(
        &self,
        req: Request<pb::SyncSipLinesRequest>,
    ) -> Result<Response<pb::SyncSipLinesResponse>, Status> {
        let ctx = self.begin(&req, &req.get_ref().tenant, Feature::SynchroConsole)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let number = account_number(req.customer.as_ref(), &ctx.settings.account_number_field, &mut v);
        let mode = sync_mode(req.mode, &mut v);
        let checked = v.into_result().and_then(|()| ctx.sip_table());
        ctx.call.checked(&self.state, ctx.provider.name(), &req.request_id, checked).await?;
        // The caller gets the answer with SIP passwords; the idempotency store keeps it without
        // them (a replay fills them in from the stored table).
        let fresh: Arc<Mutex<Option<pb::SyncSipLinesResponse>>> = Arc::default();
        let (this, run_ctx, dry_run, slot, run_number) =
            (self.clone(), ctx.clone(), req.dry_run, fresh.clone(), number.clone());
        let answer = ctx
            .call
            .mutate(&self.state, ctx.provider.name(), &req.request_id, &req, move || async move {
                let resp = this.sync(&run_ctx, &run_number, mode, dry_run).await?;
                let stored = without_passwords(&resp);
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(resp);
                Ok(stored)
            })
            .await?;
        let fresh = fresh.lock().unwrap_or_else(|e| e.into_inner()).take();
        let answer = match fresh {
            Some(resp) => resp,
            None => self.with_stored_passwords(&ctx, &number, answer).await?,
        };
        Ok(Response::new(answer))
    }

    async fn list_sip_lines(
        &self,
        req: Request<pb::ListSipLinesRequest>,
    ) -> Result<Response<pb::ListSipLinesResponse>, Status> {
        let ctx = self.begin(&req, &req.get_ref().tenant, Feature::SynchroConsole)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let number = account_number(req.customer.as_ref(), &ctx.settings.account_number_field, &mut v);
        v.into_result()?;
        let size = page::page_size(req.page_size, 100, 1000)?;
        // Bound to the customer's account: a token of another customer's rows is refused.
        let filter = format!("tenant={}&account={number}", req.tenant);
        let after = page::decode(&req.page_token, &filter)?;
        let mut conn = self.state.db.acquire().await.map_err(db("reading the SIP table"))?;
        // One more row than the page tells whether another page follows.
        let mut rows = store::rows_after(&mut conn, ctx.tenant(), &number, after.as_deref(), size + 1)
            .await
            .map_err(db("reading the SIP table"))?;
        let more = rows.len() as i64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next = if more { rows.last().map(|r| r.sip_username.clone()) } else { None };
        Ok(Response::new(pb::ListSipLinesResponse {
            rows: rows.into_iter().map(|r| pb::CustomTableRow { fields: r.fields }).collect(),
            next_page_token: page::next_token(next, &filter),
        }))
    }

    async fn set_customer_status(
        &self,
        req: Request<pb::SetCustomerStatusRequest>,
    ) -> Result<Response<pb::SetCustomerStatusResponse>, Status> {
        let ctx = self.begin(&req, &req.get_ref().tenant, Feature::CustomerStatus)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let number = account_number(req.customer.as_ref(), &ctx.settings.account_number_field, &mut v);
        let crm_status = req.customer.as_ref().map_or("", |c| c.status.as_str());
        if req.customer.is_some() && crm_status.trim().is_empty() {
            v.add("customer.status", "required: the customer's new CRM status, e.g. `current`");
        }
        ctx.call.checked(&self.state, ctx.provider.name(), &req.request_id, v.into_result()).await?;
        let desired = ctx.settings.status_map.map(crm_status);
        let (state, run_ctx) = (self.state.clone(), ctx.clone());
        let answer = ctx
            .call
            .mutate(&self.state, ctx.provider.name(), &req.request_id, &req, move || async move {
                let ctx = run_ctx;
                // Stored first: from here on the change survives a vendor outage or a restart.
                let report =
                    reconciler::Report { tenant: Some(Arc::clone(&ctx.call.tenant)), outbox: state.outbox.clone() };
                let delivered =
                    reconciler::desire(&state.db, ctx.provider.as_ref(), &report, &number, desired, state.instance)
                        .await;
                let delivery = match delivered {
                    Ok(Delivery::Applied(applied)) if applied == desired => pb::Delivery::Applied,
                    Ok(_) => pb::Delivery::Pending,
                    Err(DeliveryError::Refused(e)) => return Err(e.into()),
                    Err(DeliveryError::Store(e)) => return Err(ApiError::database("storing a desired status", &e)),
                };
                Ok(pb::SetCustomerStatusResponse {
                    desired: state_pb(desired.state()).into(),
                    delivery: delivery.into(),
                })
            })
            .await?;
        Ok(Response::new(answer))
    }

    async fn delete_account(
        &self,
        req: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let ctx = self.begin(&req, &req.get_ref().tenant, Feature::SynchroConsole)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let number = account_number(req.customer.as_ref(), &ctx.settings.account_number_field, &mut v);
        v.check(req.confirm, "confirm", "must be true: deleting an account cannot be undone");
        ctx.call.checked(&self.state, ctx.provider.name(), &req.request_id, v.into_result()).await?;
        let (state, run_ctx) = (self.state.clone(), ctx.clone());
        let answer = ctx
            .call
            .mutate(&self.state, ctx.provider.name(), &req.request_id, &req, move || async move {
                let ctx = run_ctx;
                let tenant = ctx.tenant();
                // The vendor first, holding no connection or lock. An account already gone counts
                // as deleted: a retry after a failure below (or a delete made elsewhere) still
                // clears the stored rows.
                let already_deleted = match ctx.provider.delete_account(&number).await {
                    Ok(()) => false,
                    Err(ProviderError::NoAccount { .. }) => true,
                    Err(e) => return Err(e.into()),
                };
                // Taken after the vendor deleted the account: a sync that read it before cannot
                // write its rows back (its ticket is older).
                let ticket = store::sip_ticket(&state.db).await.map_err(db("taking a delete ticket"))?;
                let mut tx = state.db.begin().await.map_err(db("deleting an account"))?;
                store::lock_customer(&mut tx, tenant, &number).await.map_err(SyncError::lock)?;
                let deleted = store::delete_rows(&mut tx, tenant, &number).await.map_err(db("deleting SIP rows"))?;
                store::delete_intent(&mut tx, tenant, &number).await.map_err(db("deleting the desired status"))?;
                store::record_write(&mut tx, tenant, &number, ticket).await.map_err(db("recording the delete"))?;
                tx.commit().await.map_err(db("committing an account deletion"))?;
                tracing::info!(tenant, account = %number, deleted_sip_lines = deleted, already_deleted, "account deleted");
                Ok(pb::DeleteAccountResponse {
                    deleted_sip_lines: i32::try_from(deleted).unwrap_or(i32::MAX),
                    already_deleted,
                })
            })
            .await?;
        Ok(Response::new(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{
        provider::{DesiredStatus, DialingBehavior},
        settings::{AccountNumberField, StatusMap},
    };

    fn settings() -> AccountSettings {
        AccountSettings {
            customer_status: true,
            synchro_console: true,
            admin_portal_url: String::new(),
            account_number_field: AccountNumberField::Nickname,
            status_map: StatusMap::default(),
            default_billing_cycle_day: None,
            default_dialing_behavior: None,
            sip_table: None,
        }
    }

    fn request(account_type: pb::AccountType, dialing: pb::DialingBehavior, ext: i32) -> pb::CreateAccountRequest {
        pb::CreateAccountRequest {
            tenant: "acme".into(),
            customer: Some(pb::Customer {
                name: "Jane".into(),
                nickname: "1001".into(),
                status: "current".into(),
                ..Default::default()
            }),
            account_type: account_type.into(),
            billing_cycle_day: 10,
            dialing_behavior: dialing.into(),
            extension_length: ext,
            request_id: String::new(),
        }
    }

    fn fields(err: ApiError) -> Vec<String> {
        err.fields().into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn a_valid_advanced_request_becomes_a_new_account() {
        let new =
            new_account(&request(pb::AccountType::Advanced, pb::DialingBehavior::DialNineTenDigit, 4), &settings())
                .unwrap();
        assert_eq!(new.extension_length, Some(4));
        assert_eq!(new.status, DesiredStatus::Active);
        assert_eq!(new.number, "1001");
    }

    #[test]
    fn simple_accounts_refuse_dial_nine_and_extension_lengths() {
        let err =
            new_account(&request(pb::AccountType::Simple, pb::DialingBehavior::DialNineSevenDigit, 4), &settings())
                .unwrap_err();
        assert_eq!(fields(err), ["dialing_behavior", "extension_length"]);
    }

    #[test]
    fn defaults_fill_billing_day_and_dialing_behaviour() {
        let mut s = settings();
        s.default_billing_cycle_day = Some(7);
        s.default_dialing_behavior = Some(DialingBehavior::TenDigit);
        let mut req = request(pb::AccountType::Simple, pb::DialingBehavior::Unspecified, 0);
        req.billing_cycle_day = 0;
        let new = new_account(&req, &s).unwrap();
        assert_eq!((new.billing_cycle_day, new.dialing_behavior), (7, DialingBehavior::TenDigit));
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let req = pb::CreateAccountRequest {
            customer: Some(pb::Customer { nickname: "12".into(), ..Default::default() }),
            billing_cycle_day: 29,
            dialing_behavior: 42,
            extension_length: 9,
            ..Default::default()
        };
        let err = new_account(&req, &settings()).unwrap_err();
        assert_eq!(
            fields(err),
            [
                "customer.nickname",
                "customer.name",
                "customer.status",
                "account_type",
                "billing_cycle_day",
                "dialing_behavior",
                "extension_length"
            ]
        );
    }

    #[test]
    fn the_account_number_comes_from_the_configured_field() {
        let mut v = Violations::new();
        let customer = pb::Customer {
            nickname: "ignored".into(),
            fields: [("acct".to_owned(), "A-1001".to_owned())].into(),
            ..Default::default()
        };
        let field = AccountNumberField::Field("acct".into());
        assert_eq!(account_number(Some(&customer), &field, &mut v), "A-1001");
        assert!(v.is_empty());
        let mut v = Violations::new();
        account_number(Some(&pb::Customer::default()), &field, &mut v);
        assert_eq!(fields(v.into_result().unwrap_err()), ["customer.fields.acct"]);
    }
}
