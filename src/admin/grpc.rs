//! RegistryService's gRPC edge: generated types stop here.

use tonic::{Request, Response, Status};

use crate::registry::file::valid_tenant_id;
use crate::{
    ops::{ApiError, page, timestamp},
    platform::AppState,
    proto::v1::{self as pb, registry_service_server::RegistryService},
    registry::{Diagnostic, ReloadReport, Tenant},
    store::audit,
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
