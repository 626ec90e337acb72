//! RegistryService's gRPC edge: generated types stop here.

use tonic::{Request, Response, Status};

use crate::registry::file::valid_tenant_id;
use crate::{
    events::inbound::store as inbound_store,
    ops::{ApiError, page, timestamp},
    platform::AppState,
    proto::v1::{self as pb, registry_service_server::RegistryService},
    registry::{Diagnostic, ReloadReport, Tenant},
    store::{audit, outbox},
};

pub struct RegistryGrpc {
    state: AppState,
}

impl RegistryGrpc {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl RegistryService for RegistryGrpc {
    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let req = req.into_inner();
        let size = page::page_size(req.page_size, 100, 1000)?;
        // The query has no filter: a token only has to be one of this method's.
        let filter = "tenants";
        let after = page::decode(&req.page_token, filter)?;
        let (page, next) = page::after_key(self.state.registry.tenants(), |t| t.id.clone(), after.as_deref(), size);
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: page.iter().map(|t| self.tenant_pb(t)).collect(),
            next_page_token: page::next_token(next, filter),
        }))
    }

    async fn get_tenant(&self, req: Request<pb::GetTenantRequest>) -> Result<Response<pb::Tenant>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let id = &req.get_ref().tenant;
        if id.is_empty() {
            return Err(ApiError::invalid_field("tenant", "required: the tenant id").into());
        }
        let tenant = self
            .state
            .registry
            .get(id)
            .ok_or_else(|| ApiError::not_found("TENANT_NOT_FOUND", format!("no tenant `{id}` is served")))?;
        Ok(Response::new(self.tenant_pb(&tenant)))
    }

    async fn validate_config(
        &self,
        req: Request<pb::ValidateConfigRequest>,
    ) -> Result<Response<pb::ValidateConfigResponse>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let req = req.into_inner();
        if req.file_name.is_empty() {
            return Err(
                ApiError::invalid_field("file_name", "required: the file name to check as, e.g. `acme.yaml`").into()
            );
        }
        let registry = self.state.registry.clone();
        let diagnostics = tokio::task::spawn_blocking(move || registry.validate_text(&req.file_name, &req.yaml))
            .await
            .map_err(|e| ApiError::internal("validating a tenant file", &e))?;
        Ok(Response::new(pb::ValidateConfigResponse {
            valid: diagnostics.is_empty(),
            diagnostics: diagnostics.iter().map(diagnostic_pb).collect(),
        }))
    }

    async fn reload_config(
        &self,
        req: Request<pb::ReloadConfigRequest>,
    ) -> Result<Response<pb::ReloadConfigResponse>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let registry = self.state.registry.clone();
        let report = tokio::task::spawn_blocking(move || registry.reload_all())
            .await
            .map_err(|e| ApiError::internal("reloading tenant files", &e))?;
        let mut answer = report_pb(report);
        // The listeners' certificates are re-read too; a bad file keeps the one in service.
        if let Some(tls) = &self.state.tls
            && let Err(e) = tls.reload()
        {
            tracing::error!(error = %e, "ReloadConfig: the TLS files could not be used; the certificate in service stays");
            answer.diagnostics.push(pb::Diagnostic {
                file: e.path,
                message: format!("TLS: {}", e.why),
                ..Default::default()
            });
        }
        Ok(Response::new(answer))
    }

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let req = req.into_inner();
        let size = page::page_size(req.page_size, 50, 1000)?;
        if !req.tenant.is_empty() && !valid_tenant_id(&req.tenant) {
            return Err(ApiError::invalid_field(
                "tenant",
                "a tenant id is 1-63 lowercase letters, digits and `-` (or empty for every tenant)",
            )
            .into());
        }
        let filter = format!("tenant={}", req.tenant);
        let before = match page::decode(&req.page_token, &filter)? {
            None => None,
            Some(id) => Some(id.parse::<i64>().map_err(|_| ApiError::invalid_field("page_token", "malformed"))?),
        };
        let tenant = (!req.tenant.is_empty()).then_some(req.tenant.as_str());
        // One extra row tells whether another page follows.
        let mut rows = audit::page(&self.state.db, tenant, before, size + 1)
            .await
            .map_err(|e| ApiError::database("reading the audit trail", &e))?;
        let more = rows.len() as i64 > size;
        rows.truncate(size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => page::encode(&last.id.to_string(), &filter),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: rows.into_iter().map(audit_pb).collect(),
            next_page_token,
        }))
    }

    async fn list_inbound_events(
        &self,
        req: Request<pb::ListInboundEventsRequest>,
    ) -> Result<Response<pb::ListInboundEventsResponse>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let req = req.into_inner();
        let q = EventQuery::check(&req.tenant, &req.state, INBOUND_STATES, req.page_size, &req.page_token)?;
        let rows = inbound_store::list(&self.state.db, &req.tenant, q.state(), q.before, q.size + 1)
            .await
            .map_err(|e| ApiError::database("reading inbound events", &e))?;
        let (rows, next_page_token) = q.page(rows, |r| r.id);
        Ok(Response::new(pb::ListInboundEventsResponse {
            events: rows.into_iter().map(inbound_pb).collect(),
            next_page_token,
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let req = req.into_inner();
        let q = EventQuery::check(&req.tenant, &req.state, DELIVERY_STATES, req.page_size, &req.page_token)?;
        let rows = outbox::deliveries(&self.state.db, &req.tenant, q.state(), q.before, q.size + 1)
            .await
            .map_err(|e| ApiError::database("reading webhook deliveries", &e))?;
        let (rows, next_page_token) = q.page(rows, |r| r.id);
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: rows.into_iter().map(delivery_pb).collect(),
            next_page_token,
        }))
    }

    async fn resend_webhook_delivery(
        &self,
        req: Request<pb::ResendWebhookDeliveryRequest>,
    ) -> Result<Response<pb::WebhookDelivery>, Status> {
        self.state.authorize_admin(req.metadata())?;
        let req = req.into_inner();
        check_tenant(&req.tenant)?;
        let found = outbox::resend(&self.state.db, &req.tenant, req.delivery_id)
            .await
            .map_err(|e| ApiError::database("re-sending a webhook delivery", &e))?;
        let delivery = found.ok_or_else(|| {
            ApiError::not_found(
                "DELIVERY_NOT_FOUND",
                format!("tenant `{}` has no webhook delivery {}", req.tenant, req.delivery_id),
            )
        })?;
        tracing::info!(tenant = %req.tenant, delivery = delivery.id, "webhook delivery re-sent by an operator");
        self.state.outbox.wake();
        Ok(Response::new(delivery_pb(delivery)))
    }
}

const INBOUND_STATES: &[&str] = &["accepted", "skipped", "superseded", "invalid"];
const DELIVERY_STATES: &[&str] = &["pending", "delivered", "failed"];

fn check_tenant(tenant: &str) -> Result<(), ApiError> {
    if !valid_tenant_id(tenant) {
        return Err(ApiError::invalid_field(
            "tenant",
            "required: a tenant id (1-63 lowercase letters, digits and `-`)",
        ));
    }
    Ok(())
}

/// A checked page request of a tenant's events: newest first, keyed by id.
struct EventQuery {
    state: String,
    size: i64,
    before: Option<i64>,
    filter: String,
}

impl EventQuery {
    fn check(tenant: &str, state: &str, states: &[&str], size: i32, token: &str) -> Result<Self, ApiError> {
        check_tenant(tenant)?;
        if !state.is_empty() && !states.contains(&state) {
            return Err(ApiError::invalid_field("state", format!("one of {}, or empty for all", states.join(", "))));
        }
        let size = page::page_size(size, 50, 1000)?;
        let filter = format!("tenant={tenant}&state={state}");
        let before = match page::decode(token, &filter)? {
            None => None,
            Some(id) => Some(id.parse::<i64>().map_err(|_| ApiError::invalid_field("page_token", "malformed"))?),
        };
        Ok(Self { state: state.to_owned(), size, before, filter })
    }

    fn state(&self) -> Option<&str> {
        (!self.state.is_empty()).then_some(self.state.as_str())
    }

    /// The page of `rows` (fetched one longer than the page) and the next page's token.
    fn page<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> (Vec<T>, String) {
        let more = rows.len() as i64 > self.size;
        rows.truncate(usize::try_from(self.size).unwrap_or(usize::MAX));
        let next = match (more, rows.last()) {
            (true, Some(last)) => page::encode(&id(last).to_string(), &self.filter),
            _ => String::new(),
        };
        (rows, next)
    }
}

fn inbound_pb(e: inbound_store::Stored) -> pb::InboundEvent {
    pb::InboundEvent {
        id: e.id,
        trigger: e.trigger,
        account_number: e.customer,
        sent_at: e.sent_at.and_then(timestamp),
        received_at: timestamp(e.received_at),
        state: e.state,
        action: e.action,
        reason: e.reason,
        duplicates: e.duplicates,
        body: e.body,
    }
}

fn delivery_pb(d: outbox::Delivery) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        id: d.id,
        webhook_id: crate::events::deliver::webhook_id(&d.event_id),
        endpoint: d.endpoint,
        event_type: d.event_type,
        state: d.state.clone(),
        attempts: d.attempts,
        last_error: d.last_error,
        last_http_status: d.last_status.unwrap_or_default(),
        created_at: timestamp(d.created_at),
        next_attempt_at: if d.state == "pending" { timestamp(d.next_attempt_at) } else { None },
        delivered_at: d.delivered_at.and_then(timestamp),
    }
}

impl RegistryGrpc {
    fn tenant_pb(&self, t: &Tenant) -> pb::Tenant {
        pb::Tenant {
            tenant: t.id.clone(),
            name: t.name.clone(),
            file: t.file.display().to_string(),
            triggers: t
                .trigger_infos()
                .into_iter()
                .map(|i| pb::TriggerSummary { area: i.area.into(), provider: i.provider.into(), enabled: i.enabled })
                .collect(),
            loaded_at: timestamp(t.loaded_at),
            config_json: t.view.to_string(),
            problems: self.state.registry.file_errors(&t.id).iter().map(diagnostic_pb).collect(),
            token_count: i32::try_from(t.tokens.len()).unwrap_or(i32::MAX),
        }
    }
}

fn diagnostic_pb(d: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        file: d.file.clone(),
        line: i32::try_from(d.line).unwrap_or(i32::MAX),
        column: i32::try_from(d.column).unwrap_or(i32::MAX),
        path: d.path.clone(),
        message: d.message.clone(),
    }
}

fn report_pb(r: ReloadReport) -> pb::ReloadConfigResponse {
    pb::ReloadConfigResponse {
        added: r.added,
        updated: r.updated,
        removed: r.removed,
        unchanged: i32::try_from(r.unchanged).unwrap_or(i32::MAX),
        diagnostics: r.diagnostics.iter().map(diagnostic_pb).collect(),
    }
}

fn audit_pb(e: audit::Event) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id,
        at: timestamp(e.at),
        tenant: e.tenant,
        caller: e.caller,
        method: e.method,
        provider: e.provider,
        outcome: e.outcome,
        reason: e.reason,
        latency_ms: e.latency_ms,
        request_id: e.request_id,
    }
}
