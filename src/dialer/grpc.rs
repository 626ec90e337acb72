//! DialerService's gRPC edge: authentication, idempotency and audit around each call, and the
//! conversion between generated types and domain types (which stop here).

use std::{sync::Arc, time::Instant};
use tracing::Instrument;

use futures::StreamExt;
use secrecy::SecretString;
use tonic::{Code, Request, Response, Status, Streaming};

use super::{
    area::DialerArea,
    export::{self, ExportRequest, ExportSummary, Outcome, Target},
    provider::{Agent, DialList, DialerStatus, FieldRules, Lead, LoginState},
    store, validate,
};
use crate::{
    ops::{
        ApiError, Violations,
        mask::{self, Updatable},
        page,
    },
    platform::{
        AppState, TenantCall,
        call::{check_request_id, method_of},
        events::{self, EventType},
    },
    proto::v1::{self as pb, dialer_service_server::DialerService, export_leads_request::Part, export_target},
};

/// The DialerService implementation.
pub struct DialerGrpc {
    state: AppState,
}

impl DialerGrpc {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn secret(s: &str) -> Option<SecretString> {
    (!s.is_empty()).then(|| SecretString::from(s.to_owned()))
}

/// An agent as the domain sees it: empty fields (and level 0) are "not sent".
fn agent_from_pb(a: &pb::Agent) -> Agent {
    Agent {
        user: a.user.clone(),
        password: secret(&a.password),
        level: (a.level != 0).then_some(a.level),
        full_name: non_empty(&a.full_name),
        group: non_empty(&a.group),
        phone_login: non_empty(&a.phone_login),
        phone_password: secret(&a.phone_password),
        voicemail_id: non_empty(&a.voicemail_id),
        email: non_empty(&a.email),
        active: a.active,
        clear: Vec::new(),
    }
}

/// What UpdateAgent's mask may name (paths relative to `agent`).
const AGENT_UPDATE: Updatable<'static> = Updatable {
    fields: &[
        "password",
        "level",
        "full_name",
        "group",
        "phone_login",
        "phone_password",
        "voicemail_id",
        "email",
        "active",
    ],
    fixed: &[("user", "it names the agent to update")],
    resource: Some("agent"),
};

/// UpdateAgent's agent: without a mask, the fields that are set; with one, exactly the named
/// fields, a named field left empty being cleared where the provider can empty it (`rules.clear`).
fn agent_update_from_pb(
    a: &pb::Agent,
    update_mask: Option<&prost_types::FieldMask>,
    rules: &FieldRules,
) -> Result<Agent, ApiError> {
    let mut v = Violations::new();
    let Some(named) = mask::named(update_mask, &AGENT_UPDATE, &mut v) else {
        return Ok(agent_from_pb(a));
    };
    let mut given = agent_from_pb(a);
    let mut agent = Agent { user: given.user.clone(), ..Agent::default() };
    // Moves a named field over; whether it has a value.
    macro_rules! take {
        ($field:ident) => {{
            agent.$field = given.$field.take();
            agent.$field.is_some()
        }};
    }
    for field in named {
        let set = match field {
            "password" => take!(password),
            "level" => take!(level),
            "full_name" => take!(full_name),
            "group" => take!(group),
            "phone_login" => take!(phone_login),
            "phone_password" => take!(phone_password),
            "voicemail_id" => take!(voicemail_id),
            "email" => take!(email),
            _ => take!(active),
        };
        if !set {
            match (rules.clear)(field) {
                Ok(clearable) => agent.clear.push(clearable),
                Err(why) => v.add(format!("agent.{field}"), format!("is in update_mask without a value: {why}")),
            }
        }
    }
    v.into_result()?;
    Ok(agent)
}

/// What the idempotency store hashes of an agent request: the request without its passwords,
/// so that no password (often a few digits) can be guessed back from a stored hash. A retry with
/// the same `request_id` that changes only a password counts as the same request.
fn without_passwords<M: Clone + prost::Message + HasAgent>(agent: &Option<pb::Agent>, msg: &M) -> M {
    let mut copy = msg.clone();
    if let Some(a) = agent {
        copy.set_agent(public_agent(a.clone()));
    }
    copy
}

/// The agent of an agent request.
trait HasAgent {
    fn set_agent(&mut self, agent: pb::Agent);
}

impl HasAgent for pb::CreateAgentRequest {
    fn set_agent(&mut self, agent: pb::Agent) {
        self.agent = Some(agent);
    }
}

impl HasAgent for pb::UpdateAgentRequest {
    fn set_agent(&mut self, agent: pb::Agent) {
        self.agent = Some(agent);
    }
}

/// The agent as answered: passwords are write-only.
fn public_agent(mut a: pb::Agent) -> pb::Agent {
    a.password.clear();
    a.phone_password.clear();
    a
}

fn list_from_pb(l: pb::DialList) -> DialList {
    DialList { list_id: l.list_id, name: l.name, campaign_id: l.campaign_id, active: l.active }
}

fn list_pb(l: DialList) -> pb::DialList {
    pb::DialList { list_id: l.list_id, name: l.name, campaign_id: l.campaign_id, active: l.active }
}

fn lead_from_pb(l: pb::Lead) -> Lead {
    Lead {
        phone_number: l.phone_number,
        phone_code: l.phone_code,
        first_name: l.first_name,
        last_name: l.last_name,
        email: l.email,
        city: l.city,
        postal_code: l.postal_code,
        vendor_lead_code: l.vendor_lead_code,
    }
}

fn lead_status_pb(outcome: Outcome) -> pb::LeadStatus {
    match outcome {
        Outcome::Accepted => pb::LeadStatus::Accepted,
        Outcome::Rejected => pb::LeadStatus::Rejected,
        Outcome::Duplicate => pb::LeadStatus::Duplicate,
        Outcome::Failed => pb::LeadStatus::NotExported,
        Outcome::Unknown | Outcome::Sending => pb::LeadStatus::OutcomeUnknown,
    }
}

fn summary_pb(s: ExportSummary) -> pb::ExportLeadsResponse {
    pb::ExportLeadsResponse {
        list_id: s.list_id,
        accepted: s.accepted,
        rejected: s.rejected,
        duplicates: s.duplicates,
        results: s
            .results
            .into_iter()
            .map(|r| pb::LeadResult {
                index: r.index,
                phone_number: r.phone_number,
                lead_id: r.lead_id,
                error: r.error,
                status: lead_status_pb(r.outcome).into(),
            })
            .collect(),
    }
}

fn status_pb(provider: &str, s: DialerStatus) -> pb::DialerStatus {
    pb::DialerStatus {
        provider: provider.to_owned(),
        reachability: match s.reachable {
            None => pb::Reachability::Unspecified,
            Some(true) => pb::Reachability::Reachable,
            Some(false) => pb::Reachability::Unreachable,
        }
        .into(),
        version: s.version,
        build: s.build,
        login: match s.login {
            LoginState::Unknown => pb::LoginState::Unspecified,
            LoginState::Working => pb::LoginState::Working,
            LoginState::Refused => pb::LoginState::Refused,
        }
        .into(),
        message: s.message,
    }
}

fn target_from_pb(t: pb::ExportTarget) -> Result<Target, ApiError> {
    match t.list {
        Some(export_target::List::ExistingListId(id)) => Ok(Target::Existing(id)),
        Some(export_target::List::NewList(l)) => Ok(Target::New(list_from_pb(l))),
        None => Err(ApiError::invalid_field("target", "set `existing_list_id` or `new_list`")),
    }
}

fn required(field: &str, what: &str) -> ApiError {
    ApiError::invalid_field(field, format!("required: {what}"))
}

impl DialerGrpc {
    /// The edge preamble: the caller authenticated for the tenant, its dialer trigger, and the
    /// trigger's provider name (for audit rows) and client.
    fn begin<T>(
        &self,
        req: &Request<T>,
        tenant: &str,
    ) -> Result<(TenantCall, &'static str, Arc<dyn super::provider::DialerProvider>), ApiError> {
        let edge = self.state.begin::<DialerArea, _>(req, tenant)?;
        let provider = Arc::clone(&edge.trigger.inner);
        Ok((edge.call, edge.trigger.provider, provider))
    }

    async fn export(
        &self,
        call: &TenantCall,
        provider: Arc<dyn super::provider::DialerProvider>,
        first: pb::ExportLeadsRequest,
        stream: Streaming<pb::ExportLeadsRequest>,
    ) -> Result<ExportSummary, ApiError> {
        let target = match first.part {
            Some(Part::Target(t)) => target_from_pb(t)?,
            _ => return Err(ApiError::invalid_field("target", "the first message must name the target")),
        };
        check_request_id(&first.request_id)?;
        let (tenant, request_id) = (first.tenant, first.request_id);
        // Later messages may repeat the tenant and request_id, not change them.
        let (t, r) = (tenant.clone(), request_id.clone());
        let leads = stream.map(move |msg| {
            let msg = msg.map_err(|s| {
                if s.code() == Code::Internal && s.message().starts_with("failed to decode Protobuf message") {
                    // tonic's decoder: the caller sent a message that is not one.
                    return ApiError::new(
                        Code::InvalidArgument,
                        "MALFORMED_REQUEST",
                        format!("a message of the export stream is not a valid ExportLeadsRequest: {}", s.message()),
                    );
                }
                ApiError::new(
                    if s.code() == Code::Unknown { Code::Cancelled } else { s.code() },
                    "EXPORT_STREAM_BROKEN",
                    format!("the export stream broke: {}", s.message()),
                )
            })?;
            if !msg.tenant.is_empty() && msg.tenant != t {
                return Err(ApiError::invalid_field("tenant", "must be empty or the first message's tenant"));
            }
            if !msg.request_id.is_empty() && msg.request_id != r {
                return Err(ApiError::invalid_field("request_id", "must be empty or the first message's request_id"));
            }
            match msg.part {
                Some(Part::Batch(batch)) => Ok(batch.leads.into_iter().map(lead_from_pb).collect()),
                Some(Part::Target(_)) => {
                    Err(ApiError::invalid_field("target", "only the first message may name the target"))
                }
                None => Ok(Vec::new()),
            }
        });
        let id = request_id.clone();
        let req = ExportRequest { tenant: call.tenant.id.clone(), request_id, target, instance: self.state.instance };
        // Its own task: if the caller goes away mid-export, the batches already read are still
        // sent and recorded, and a repeat of the export finds them (and the event is stored).
        let (state, tenant) = (self.state.clone(), Arc::clone(&call.tenant));
        let run = async move {
            let result = export::run(state.db.clone(), provider, req, leads).await;
            if let Ok(summary) = &result
                && events::wanted(&tenant, EventType::ExportFinished)
            {
                let event = export::finished_event(&tenant.id, &id, summary);
                if let Err(e) = events::emit_alone(&state, &tenant, &event).await {
                    tracing::warn!(error = %e, "storing an export's export.finished event failed");
                }
            }
            result
        };
        tokio::spawn(run.in_current_span()).await.map_err(|e| ApiError::internal("lead export task", &e))?
    }
}

#[tonic::async_trait]
impl DialerService for DialerGrpc {
    async fn create_agent(&self, req: Request<pb::CreateAgentRequest>) -> Result<Response<pb::AgentResponse>, Status> {
        let (call, name, provider) = self.begin(&req, &req.get_ref().tenant)?;
        let msg = req.into_inner();
        let checked = msg.agent.clone().ok_or_else(|| required("agent", "the agent to create")).and_then(|agent_pb| {
            let agent = agent_from_pb(&agent_pb);
            validate::new_agent(&agent, provider.field_rules())?;
            Ok((agent_pb, agent))
        });
        let (agent_pb, agent) = call.checked(&self.state, name, &msg.request_id, checked).await?;
        let resp = call
            .mutate(&self.state, name, &msg.request_id, &without_passwords(&msg.agent, &msg), move || async move {
                let ack = provider.create_agent(&agent).await.map_err(|e| e.for_agent(&agent.user))?;
                Ok(pb::AgentResponse { agent: Some(public_agent(agent_pb)), vendor_message: ack.vendor_message })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn update_agent(&self, req: Request<pb::UpdateAgentRequest>) -> Result<Response<pb::AgentResponse>, Status> {
        let (call, name, provider) = self.begin(&req, &req.get_ref().tenant)?;
        let msg = req.into_inner();
        let checked =
            msg.agent.clone().ok_or_else(|| required("agent", "the agent's user and the fields to change")).and_then(
                |agent_pb| {
                    let agent = agent_update_from_pb(&agent_pb, msg.update_mask.as_ref(), provider.field_rules())?;
                    validate::agent_update(&agent, provider.field_rules())?;
                    Ok((agent_pb, agent))
                },
            );
        let (agent_pb, agent) = call.checked(&self.state, name, &msg.request_id, checked).await?;
        let resp = call
            .mutate(&self.state, name, &msg.request_id, &without_passwords(&msg.agent, &msg), move || async move {
                let ack = provider.update_agent(&agent).await.map_err(|e| e.for_agent(&agent.user))?;
                Ok(pb::AgentResponse { agent: Some(public_agent(agent_pb)), vendor_message: ack.vendor_message })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn create_list(&self, req: Request<pb::CreateListRequest>) -> Result<Response<pb::DialList>, Status> {
        let (call, name, provider) = self.begin(&req, &req.get_ref().tenant)?;
        let msg = req.into_inner();
        let checked = msg.list.clone().ok_or_else(|| required("list", "the list to create")).and_then(|list| {
            let list = list_from_pb(list);
            validate::list(&list, provider.field_rules())?;
            Ok(list)
        });
        let list = call.checked(&self.state, name, &msg.request_id, checked).await?;
        let (db, tenant) = (self.state.db.clone(), call.tenant.id.clone());
        let resp = call
            .mutate(&self.state, name, &msg.request_id, &msg, move || async move {
                provider.create_list(&list).await?;
                // Stock VICIdial's ListActiveLists can only look up lists it knows.
                if let Err(e) = store::remember_list(&db, &tenant, &list.list_id).await {
                    tracing::warn!(error = %e, "remembering a created list failed; ListActiveLists may miss it");
                }
                Ok(list_pb(list))
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn delete_agent(
        &self,
        req: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::DeleteAgentResponse>, Status> {
        let (call, name, provider) = self.begin(&req, &req.get_ref().tenant)?;
        let msg = req.into_inner();
        let checked = validate::agent_user(&msg.user).map(|()| msg.user.clone());
        let user = call.checked(&self.state, name, &msg.request_id, checked).await?;
        let resp = call
            .mutate(&self.state, name, &msg.request_id, &msg, move || async move {
                let ack = provider.delete_agent(&user).await.map_err(|e| e.for_agent(&user))?;
                Ok(pb::DeleteAgentResponse { user, vendor_message: ack.vendor_message })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn list_active_lists(
        &self,
        req: Request<pb::ListActiveListsRequest>,
    ) -> Result<Response<pb::ListActiveListsResponse>, Status> {
        let (call, _, provider) = self.begin(&req, &req.get_ref().tenant)?;
        let req = req.into_inner();
        let size = page::page_size(req.page_size, 100, 1000)?;
        let filter = format!("tenant={}", req.tenant);
        let after = page::decode(&req.page_token, &filter)?;
        let known = store::known_lists(&self.state.db, &call.tenant.id)
            .await
            .map_err(|e| ApiError::database("dialer known lists", &e))?;
        let mut lists = provider.active_lists(&known).await.map_err(ApiError::from)?;
        // In numeric order of the (digit) ids: by length, then by text.
        let key = |l: &DialList| format!("{:04}:{}", l.list_id.len(), l.list_id);
        lists.sort_by_key(key);
        lists.dedup_by(|a, b| a.list_id == b.list_id);
        let (page, next) = page::after_key(lists, key, after.as_deref(), size);
        Ok(Response::new(pb::ListActiveListsResponse {
            lists: page.into_iter().map(list_pb).collect(),
            next_page_token: page::next_token(next, &filter),
        }))
    }

    async fn get_dialer_status(
        &self,
        req: Request<pb::GetDialerStatusRequest>,
    ) -> Result<Response<pb::DialerStatus>, Status> {
        let (_, name, provider) = self.begin(&req, &req.get_ref().tenant)?;
        Ok(Response::new(status_pb(name, provider.status().await)))
    }

    async fn export_leads(
        &self,
        req: Request<Streaming<pb::ExportLeadsRequest>>,
    ) -> Result<Response<pb::ExportLeadsResponse>, Status> {
        let method = method_of(&req);
        let (metadata, _, mut stream) = req.into_parts();
        let first = stream.message().await?.ok_or_else(|| {
            ApiError::invalid_field("target", "the stream is empty: its first message names the target")
        })?;
        let call = self.state.authorize(&metadata, method, &first.tenant)?;
        let started = Instant::now();
        let request_id = first.request_id.clone();
        // The trigger is looked up after authentication, as `begin` does, but its absence is
        // audited like every other way an export ends.
        let (name, result) = match call.tenant.enabled_trigger::<DialerArea>() {
            Ok(trigger) => (trigger.provider, self.export(&call, Arc::clone(&trigger.inner), first, stream).await),
            Err(e) => ("", Err(e)),
        };
        call.audit(&self.state, name, &request_id, result.as_ref().map(|s| s.replayed), started).await;
        Ok(Response::new(summary_pb(result?)))
    }
}
