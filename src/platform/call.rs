//! The edge preamble: what every service handler does first and last. Authenticate the caller
//! (for a tenant, or as an admin), and wrap each mutation in its idempotency key and its audit row.

use std::{future::Future, sync::Arc, time::Instant};

use sha2::{Digest, Sha256};
use tonic::{Code, metadata::MetadataMap};
use tracing::Instrument;

use super::state::AppState;
use crate::{
    ops::{ApiError, auth, auth::TokenHash, error::code_name},
    registry::{Area, Tenant, Trigger},
    store::{
        audit,
        idempotency::{self, Claim, Key},
    },
};

/// An authenticated call acting for one tenant.
#[derive(Debug, Clone)]
pub struct TenantCall {
    pub tenant: Arc<Tenant>,
    pub caller: auth::TokenHash,
    /// `patchbay.v1.AccountService/CreateAccount`.
    pub method: String,
}

/// The full method name of a call (`patchbay.v1.AccountService/CreateAccount`), put into each
/// request's extensions by the server's outermost layer.
#[derive(Debug, Clone)]
pub struct RpcMethod(pub String);

/// The full method name of a request, e.g. `patchbay.v1.AccountService/CreateAccount`.
pub fn method_of<T>(req: &tonic::Request<T>) -> String {
    req.extensions().get::<RpcMethod>().map(|m| m.0.clone()).unwrap_or_else(|| "unknown".to_owned())
}

impl AppState {
    /// Checks a call's bearer token against `tenant`'s access tokens (the first half of
    /// [`AppState::begin`]; a stream whose tenant arrives in its first message calls it itself).
    pub fn authorize(&self, metadata: &MetadataMap, method: String, tenant: &str) -> Result<TenantCall, ApiError> {
        let caller = auth::bearer(metadata)?;
        let tenant = self.registry.authorize(&caller, tenant)?;
        // The call's span (server.rs) names its tenant from here on: logs and the exported trace.
        tracing::Span::current().record("tenant", tracing::field::display(&tenant.id));
        Ok(TenantCall { tenant, caller, method })
    }

    /// Checks that a RegistryService call carries an admin token.
    pub fn authorize_admin(&self, metadata: &MetadataMap) -> Result<TokenHash, ApiError> {
        let token = auth::bearer(metadata)?;
        // Every admin hash is compared, so timing does not tell which one matched.
        let admin = self.admin_tokens.iter().fold(false, |ok, h| h.ct_eq(&token) | ok);
        if admin {
            return Ok(token);
        }
        if self.registry.knows_token(&token) {
            return Err(ApiError::permission_denied(
                "ADMIN_TOKEN_REQUIRED",
                "RegistryService needs an admin token (PATCHBAY_ADMIN_TOKENS), not a tenant token",
            ));
        }
        Err(ApiError::unauthenticated("INVALID_TOKEN", "the bearer token is not valid"))
    }
}

/// What every handler starts from: the authenticated call and its tenant's enabled trigger of
/// the handler's area (see [`AppState::begin`]).
pub struct Edge<T: 'static> {
    pub call: TenantCall,
    pub trigger: Arc<Trigger<T>>,
    /// The area's key under `triggers:` (`account`).
    pub area: &'static str,
}

impl<T> Clone for Edge<T> {
    fn clone(&self) -> Self {
        Self { call: self.call.clone(), trigger: Arc::clone(&self.trigger), area: self.area }
    }
}

impl<T> Edge<T> {
    /// The tenant's id.
    pub fn tenant(&self) -> &str {
        &self.call.tenant.id
    }

    /// The provider's registry name (`alianza`), for audit rows.
    pub fn provider(&self) -> &'static str {
        self.trigger.provider
    }

    /// `FAILED_PRECONDITION FEATURE_DISABLED` unless the trigger's switch `key` is on: the one
    /// answer of every area's feature switches (`customer_status: false`).
    pub fn require(&self, key: &'static str, on: bool) -> Result<(), ApiError> {
        if on {
            return Ok(());
        }
        Err(ApiError::failed_precondition(
            "FEATURE_DISABLED",
            format!(
                "`{key}` is off in the {} trigger of tenant `{}`; set `{key}: true` in its providers.d file",
                self.area, self.call.tenant.id
            ),
        )
        .with_metadata("feature", key))
    }
}

impl AppState {
    /// The edge preamble of every tenant-scoped call of area `A`: the caller's token checked for
    /// `tenant`, then the tenant's trigger of `A`, present and enabled.
    pub fn begin<A: Area, R>(&self, req: &tonic::Request<R>, tenant: &str) -> Result<Edge<A::Trigger>, ApiError> {
        self.begin_with::<A>(req.metadata(), method_of(req), tenant)
    }

    /// As [`AppState::begin`], for streams whose tenant arrives in the first message.
    pub fn begin_with<A: Area>(
        &self,
        metadata: &MetadataMap,
        method: String,
        tenant: &str,
    ) -> Result<Edge<A::Trigger>, ApiError> {
        let call = self.authorize(metadata, method, tenant)?;
        let trigger = call.tenant.enabled_trigger::<A>()?;
        Ok(Edge { call, trigger, area: A::KEY })
    }
}

/// `request_id` rules: optional; when set, at most 128 printable characters.
pub fn check_request_id(request_id: &str) -> Result<(), ApiError> {
    if request_id.len() > 128 || request_id.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "request_id",
            "at most 128 printable characters (a UUID is a good choice)",
        ));
    }
    Ok(())
}

impl TenantCall {
    /// Runs a mutation once per `request_id` and audits it.
    ///
    /// With a `request_id`, a retry of the same request gets the stored answer without running
    /// again; the same id with another request is `INVALID_ARGUMENT`; a retry racing the first
    /// call is `ABORTED` (retry shortly). Without one, the call simply runs. `request` is only
    /// hashed, to tell a retry from another request: pass a copy without secrets when it has any.
    ///
    /// The mutation runs in a task of its own: a caller that gives up (deadline, disconnect) does
    /// not cut it off half-way, so a vendor change never goes without its stored state, its
    /// idempotent answer or its audit row. Hence the `'static` bounds: `run` owns what it uses.
    pub async fn mutate<Req, Resp, F, Fut>(
        &self,
        state: &AppState,
        provider: &str,
        request_id: &str,
        request: &Req,
        run: F,
    ) -> Result<Resp, ApiError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
    {
        check_request_id(request_id)?;
        let hash: [u8; 32] = Sha256::digest(request.encode_to_vec()).into();
        let (call, run_state, run_request_id) = (self.clone(), state.clone(), request_id.to_owned());
        self.run_mutation(state, provider, request_id, move || async move {
            call.mutate_inner(&run_state, &run_request_id, &hash, run).await
        })
        .await
    }

    /// A mutation's request checked before anything is claimed: a refusal (a bad field) is
    /// audited like every other end of a mutation, and nothing is claimed or sent.
    pub async fn checked<T>(
        &self,
        state: &AppState,
        provider: &str,
        request_id: &str,
        checked: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Err(e) = &checked {
            self.audit(state, provider, request_id, Err(e), Instant::now()).await;
        }
        checked
    }

    /// Runs a mutation whose idempotency a domain store keeps itself (an order's submission row
    /// is its claim), in a task of its own, and audits it. `run` answers whether it replayed a
    /// stored answer. [`TenantCall::mutate`] is this plus the generic idempotency key.
    pub async fn run_mutation<Resp, F, Fut>(
        &self,
        state: &AppState,
        provider: &str,
        request_id: &str,
        run: F,
    ) -> Result<Resp, ApiError>
    where
        Resp: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Resp, bool), ApiError>> + Send + 'static,
    {
        if !request_id.is_empty() && check_request_id(request_id).is_ok() {
            tracing::Span::current().record("request_id", tracing::field::display(request_id));
        }
        let (call, state, provider, request_id) =
            (self.clone(), state.clone(), provider.to_owned(), request_id.to_owned());
        let task = tokio::spawn(
            async move {
                let started = Instant::now();
                // The change's audit row and idempotency key need the database: with it away, the
                // vendor is not called at all (UNAVAILABLE, retry later), rather than called and
                // left without a record.
                let result = match call_state_db_ready(&state).await {
                    Ok(()) => run().await,
                    Err(e) => Err(e),
                };
                call.audit(&state, &provider, &request_id, result.as_ref().map(|(_, replay)| *replay), started).await;
                result.map(|(resp, _)| resp)
            }
            // The call's span (its method) goes with the task.
            .in_current_span(),
        );
        task.await.unwrap_or_else(|e| Err(ApiError::internal("a mutation's task", &e)))
    }

    async fn mutate_inner<Resp, F, Fut>(
        &self,
        state: &AppState,
        request_id: &str,
        hash: &[u8],
        run: F,
    ) -> Result<(Resp, bool), ApiError>
    where
        Resp: prost::Message + Default,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Resp, ApiError>>,
    {
        if request_id.is_empty() {
            return run().await.map(|r| (r, false));
        }
        let key = Key { tenant: &self.tenant.id, method: &self.method, request_id };
        let db = |e: sqlx::Error| ApiError::database("idempotency store", &e);
        let claimed = idempotency::claim(&state.db, key, hash, state.instance).instrument(db_span("idempotency claim"));
        match claimed.await.map_err(db)? {
            Claim::Owned => {}
            Claim::Done(bytes) => {
                let resp = Resp::decode(bytes.as_slice()).map_err(|e| ApiError::internal("stored response", &e))?;
                return Ok((resp, true));
            }
            Claim::InProgress => {
                return Err(ApiError::new(
                    Code::Aborted,
                    "REQUEST_IN_PROGRESS",
                    "a call with this request_id is still running; retry shortly to get its answer",
                )
                .with_retry_after(std::time::Duration::from_secs(1)));
            }
            Claim::Mismatch => {
                return Err(ApiError::invalid_field(
                    "request_id",
                    "was already used for a different request in the last 24 hours; use a new id for a new request",
                )
                .with_metadata("rule", "IDEMPOTENCY_KEY_REUSED"));
            }
        }
        match run().await {
            Ok(resp) => {
                let bytes = resp.encode_to_vec();
                let completed = idempotency::complete(&state.db, key, &bytes);
                if let Err(e) = completed.instrument(db_span("idempotency complete")).await {
                    // The change is made; only its replay is lost. Do not fail the call for it.
                    tracing::error!(error = %e, request_id, "storing an idempotent answer failed");
                }
                Ok((resp, false))
            }
            Err(err) => {
                if let Err(e) = idempotency::release(&state.db, key).await {
                    tracing::error!(error = %e, request_id, "releasing an idempotency key failed");
                }
                Err(err)
            }
        }
    }

    /// Writes the audit row of a mutation. `Ok(replayed)` for success. A row the database cannot
    /// take now is kept and written once it is back (`AppState::audit_backlog`), never turned into
    /// the call's error: the change itself has happened.
    pub async fn audit(
        &self,
        state: &AppState,
        provider: &str,
        request_id: &str,
        outcome: Result<bool, &ApiError>,
        started: Instant,
    ) {
        // The database is what failed: waiting for the pool again would only delay the caller's
        // UNAVAILABLE, so the row is kept for later at once.
        let db_away = matches!(outcome, Err(e) if e.reason == "DATABASE_UNAVAILABLE");
        let (outcome, reason) = match outcome {
            Ok(false) => ("OK".to_owned(), String::new()),
            Ok(true) => ("OK".to_owned(), "IDEMPOTENT_REPLAY".to_owned()),
            Err(e) => (code_name(e.code).to_owned(), e.reason.to_string()),
        };
        let event = audit::NewEvent {
            tenant: &self.tenant.id,
            caller: &self.caller.caller_id(),
            method: &self.method,
            provider,
            outcome: &outcome,
            reason: &reason,
            latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            request_id,
        };
        let written = if db_away {
            Err(None)
        } else {
            audit::record(&state.db, &event).instrument(db_span("audit insert")).await.map_err(Some)
        };
        if let Err(e) = written {
            if state.audit_backlog.keep(&event, chrono::Utc::now()) {
                tracing::warn!(error = ?e.map(|e| e.to_string()), method = %self.method, "an audit row is held back until the database takes it");
            } else {
                // The backlog is full: the log is the row's last record.
                tracing::error!(
                    tenant = %event.tenant, caller = %event.caller, method = %event.method, provider = %event.provider,
                    outcome = %event.outcome, reason = %event.reason, request_id = %event.request_id,
                    "audit row lost to the database outage (the backlog is full)"
                );
            }
        }
    }
}

/// A span for a call's database work, a child of the call's span in the exported trace.
fn db_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!("db", operation, otel.name = operation, otel.kind = "client", db.system = "postgresql")
}

/// Whether the database can take a change's records now (a connection from the pool, which
/// sqlx checks before handing it out).
async fn call_state_db_ready(state: &AppState) -> Result<(), ApiError> {
    state.db.acquire().await.map(drop).map_err(|e| ApiError::database("checking the database before a change", &e))
}
