//! The Alianza REST API v2 client of one tenant.
//!
//! Sessions: one login per tenant, reused until Alianza says 401 (the token's lifetime slides
//! with use); concurrent calls that find no token share one login (single flight); on 401 the
//! client logs in again and retries that request once. Every request has a timeout, and every
//! answer is read up to [`MAX_BODY`] only.
//!
//! The error policy (see [`ProviderError`]): reads are retried with jittered backoff on 5xx,
//! timeouts, connection failures and unreadable answers (bounded), then `Unavailable` /
//! `BadResponse`. Changes are repeated only when the request provably never reached Alianza
//! (connection refused) or was refused for its token (401); a change sent without a clear answer
//! (timeout, 5xx, unreadable answer) is `OutcomeUnknown`. A 404 in Alianza's own error shape means
//! the entity is absent; a 404 or 405 in any other shape means the URL is not Alianza's API
//! (`VendorMisconfigured`). A client let go logs out (`PUT /v2/authorize/logout`), once, in the
//! background.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::{BoxFuture, Shared};
use reqwest::{Method, Url, header::HeaderValue};
use secrecy::SecretString;

use super::{
    convert::{domain_account, sip_lines, user_plans},
    wire::{self, VendorMessage},
};
use crate::{
    account::provider::{
        Account, AccountPanel, AccountProvider, AccountType, DesiredStatus, NewAccount, ProviderError, Rejection,
        SipLine, StatusChange, VendorFault,
    },
    ops::{retry::Backoff, vendor::VendorHttp},
};

/// `ErrorInfo.domain` of Alianza's own errors.
pub const DOMAIN: &str = "alianza.com";
/// The YAML `provider:` name.
pub const PROVIDER: &str = "alianza";

/// Vendor codes meaning "this account number is taken".
const ACCOUNT_EXISTS_CODES: &[&str] = &["AccountNumberInUse", "AccountNumberAlreadyExists"];

/// How long calling-plan product names are reused before being read again.
const PLAN_NAMES_TTL: Duration = Duration::from_secs(300);
/// An account naming a product the cache lacks refreshes it, at most this often.
const PLAN_NAMES_MIN_REFRESH: Duration = Duration::from_secs(10);

/// A logout gets this long at most (it runs while a server stops).
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// Vendor answers are read up to this many bytes; a longer one is treated as unreadable.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The tenant key a wrong base URL points at.
const API_URL_KEY: &str = "triggers.account.api_url";

/// How a caller learns whether a change without a clear answer was made.
const CHECK_CREATE: &str = "GetAccountStatus for this customer tells: NOT_FOUND (ACCOUNT_NOT_ENABLED) means it was \
                            not created; if it was, CreateAccount again answers ALREADY_EXISTS";
const CHECK_STATUS: &str = "GetAccountStatus shows the account's status";
const CHECK_DELETE: &str = "GetAccountStatus tells (NOT_FOUND means it is gone); DeleteAccount again is safe: an \
                            account already gone counts as deleted";

/// What account creation takes from the tenant's `account_defaults`.
#[derive(Debug, Clone)]
pub struct CreateDefaults {
    pub time_zone: String,
    pub regulatory_type: String,
    /// Needed only for accounts with toll-free numbers: sent when set.
    pub inbound_rate_plan_product_id: Option<String>,
    /// `CPE1` or `CPE2`; `None`: the partition's default.
    pub platform_type: Option<String>,
}

/// One tenant's connection settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://api.alianza.com`, without a trailing slash.
    pub base_url: String,
    pub partition_id: String,
    pub username: SecretString,
    pub password: SecretString,
    /// Per request, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// Retries of reads on 5xx, timeouts and connection failures.
    pub read_backoff: Backoff,
    /// `None` when the tenant has no account_defaults (CreateAccount then refuses).
    pub create_defaults: Option<CreateDefaults>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("partition_id", &self.partition_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The default read retries: 3 attempts, 100 ms then 200 ms (jittered).
pub const READ_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 3);

/// An Alianza client for one tenant. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct AlianzaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AlianzaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlianzaClient").field("config", &self.inner.cfg).finish_non_exhaustive()
    }
}

/// A session token, ready to send as the `X-AUTH-TOKEN` header.
type Token = Arc<HeaderValue>;

type LoginFuture = Shared<BoxFuture<'static, Result<Token, ProviderError>>>;

enum Session {
    Empty,
    LoggingIn(LoginFuture),
    Ready(Token),
}

struct PlanNames {
    fetched: Instant,
    names: Arc<HashMap<String, String>>,
}

struct Inner {
    http: VendorHttp,
    cfg: ClientConfig,
    /// `{base}/v2/authorize`
    authorize_url: Url,
    /// `{base}/v2/partition/{partitionId}`
    partition_url: Url,
    session: Mutex<Session>,
    plan_names: Mutex<Option<PlanNames>>,
    /// Held while calling-plan names are read, so concurrent cache misses make one request.
    plan_names_refresh: tokio::sync::Mutex<()>,
    logins: AtomicU64,
}

/// What a request is, for the error policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Safe to repeat: retried (bounded) when the vendor fails.
    Read,
    /// A change: never repeated once it may have reached the vendor. `check` tells a caller how
    /// to find out whether it was made when no clear answer came back.
    Mutation { check: &'static str },
}

/// A failed request: 404 is kept apart, since its meaning depends on the call.
enum CallError {
    NotFound(VendorMessage),
    Failed(ProviderError),
}

impl From<ProviderError> for CallError {
    fn from(e: ProviderError) -> Self {
        Self::Failed(e)
    }
}

/// Whether a 404 came from Alianza's API itself (its JSON error shapes carry a code, e.g.
/// `EntityNotFound`), rather than from a server that has no such path.
fn from_the_api(m: &VendorMessage) -> bool {
    !m.code.is_empty()
}

/// A 404 that is not the API's: the base URL (or partition) is wrong.
fn wrong_url(m: VendorMessage, keys: &'static str) -> ProviderError {
    let code = if m.code.is_empty() { "HTTP_404".to_owned() } else { m.code };
    ProviderError::VendorMisconfigured {
        fault: VendorFault { domain: DOMAIN, http_status: Some(404), code, message: m.message },
        keys,
    }
}

/// Account-scoped calls: Alianza's 404 means the account is not there.
fn account_scoped(e: CallError) -> ProviderError {
    match e {
        CallError::NotFound(m) if from_the_api(&m) => ProviderError::NoAccount { vendor: "Alianza" },
        CallError::NotFound(m) => wrong_url(m, API_URL_KEY),
        CallError::Failed(e) => e,
    }
}

impl AlianzaClient {
    /// A client for `cfg`, on the process's pooled HTTP client. Fails only on a malformed base URL.
    pub fn new(http: VendorHttp, cfg: ClientConfig) -> Result<Self, String> {
        let base: Url = cfg.base_url.parse().map_err(|e| format!("api_url: {e}"))?;
        let join = |segments: &[&str]| -> Result<Url, String> {
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|_| "api_url cannot be a base URL".to_owned())?
                .pop_if_empty()
                .extend(segments);
            Ok(url)
        };
        let authorize_url = join(&["v2", "authorize"])?;
        let partition_url = join(&["v2", "partition", &cfg.partition_id])?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                cfg,
                authorize_url,
                partition_url,
                session: Mutex::new(Session::Empty),
                plan_names: Mutex::new(None),
                plan_names_refresh: tokio::sync::Mutex::new(()),
                logins: AtomicU64::new(0),
            }),
        })
    }

    /// Logins made by this client (each shared by every call waiting for it).
    pub fn logins(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// The account with this account number (exact match), with the vendor's id.
    async fn lookup(&self, number: &str) -> Result<wire::Account, ProviderError> {
        let mut url = self.inner.url(&["account", number]);
        url.query_pairs_mut().append_pair("accountIdType", "AccountNumber");
        self.inner.call("GET account", Method::GET, url, None, Kind::Read).await.map_err(account_scoped)
    }

    async fn users(&self, id: &str) -> Result<Vec<wire::User>, ProviderError> {
        let mut url = self.inner.url(&["account", id, "user"]);
        // Without it Alianza answers at most 1,000 users, silently.
        url.query_pairs_mut().append_pair("limitedData", "true");
        self.inner.call("GET account users", Method::GET, url, None, Kind::Read).await.map_err(account_scoped)
    }

    async fn device_lines(&self, id: &str) -> Result<Vec<wire::DeviceLine>, ProviderError> {
        let url = self.inner.url(&["account", id, "deviceline"]);
        self.inner.call("GET account devicelines", Method::GET, url, None, Kind::Read).await.map_err(account_scoped)
    }

    /// The account's telephone numbers (all of them: `limitedData=true` is the spec's way for
    /// large lists).
    async fn telephone_numbers(&self, id: &str) -> Result<Vec<wire::TelephoneNumber>, ProviderError> {
        let mut url = self.inner.url(&["account", id, "telephonenumber"]);
        url.query_pairs_mut().append_pair("limitedData", "true");
        self.inner
            .call("GET account telephonenumbers", Method::GET, url, None, Kind::Read)
            .await
            .map_err(account_scoped)
    }

    /// Calling-plan product id -> name, cached per tenant for [`PLAN_NAMES_TTL`].
    async fn plan_names<'p>(
        &self,
        wanted: impl Iterator<Item = &'p wire::AccountCallingPlan> + Clone,
    ) -> Result<Arc<HashMap<String, String>>, ProviderError> {
        if wanted.clone().next().is_none() {
            return Ok(Arc::default());
        }
        let fresh = || {
            let cache = self.inner.plan_names.lock().unwrap_or_else(|e| e.into_inner());
            let cached = cache.as_ref().map(|c| (c.fetched.elapsed(), Arc::clone(&c.names)));
            let usable = cached.as_ref().is_some_and(|(age, names)| {
                let complete = wanted.clone().all(|p| names.contains_key(&p.calling_plan_product_id));
                *age < PLAN_NAMES_TTL && (complete || *age < PLAN_NAMES_MIN_REFRESH)
            });
            (usable, cached.map(|(_, names)| names))
        };
        if let (true, Some(names)) = fresh() {
            return Ok(names);
        }
        let _refreshing = self.inner.plan_names_refresh.lock().await;
        // Another call may have refreshed the names while this one waited.
        let (usable, cached) = fresh();
        if let (true, Some(names)) = (usable, &cached) {
            return Ok(Arc::clone(names));
        }
        let url = self.inner.url(&["callingplanproduct"]);
        let products: Vec<wire::CallingPlanProduct> =
            match self.inner.call("GET callingplanproducts", Method::GET, url, None, Kind::Read).await {
                Ok(p) => p,
                // Names are decoration: without them the panel shows product ids.
                Err(CallError::NotFound(_)) => Vec::new(),
                Err(CallError::Failed(e)) => match cached {
                    Some(names) => {
                        tracing::warn!(error = %e, "calling-plan names could not be refreshed; using the cached ones");
                        return Ok(names);
                    }
                    None => return Err(e),
                },
            };
        let names: Arc<HashMap<String, String>> = Arc::new(products.into_iter().map(|p| (p.id, p.name)).collect());
        *self.inner.plan_names.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(PlanNames { fetched: Instant::now(), names: Arc::clone(&names) });
        Ok(names)
    }

    /// Users and lines of an account, read in parallel, as SIP lines.
    async fn lines_of(&self, id: &str) -> Result<(Vec<wire::User>, Vec<SipLine>), ProviderError> {
        let (users, lines) = futures::try_join!(self.users(id), self.device_lines(id))?;
        let sip_lines = sip_lines(&users, lines);
        Ok((users, sip_lines))
    }
}

#[tonic::async_trait]
impl AccountProvider for AlianzaClient {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn account_panel(&self, number: &str) -> Result<AccountPanel, ProviderError> {
        let account = self.lookup(number).await?;
        let (mut users, sip_lines) = self.lines_of(&account.id).await?;
        // The account's plans and its users' (END_USER) plans, named from one product list.
        let names = self
            .plan_names(account.calling_plans.iter().chain(users.iter().flat_map(|u| u.calling_plans.iter())))
            .await?;
        let mut product_plans: Vec<String> = Vec::new();
        for user in &users {
            if !user.user_product_plan.is_empty() && !product_plans.contains(&user.user_product_plan) {
                product_plans.push(user.user_product_plan.clone());
            }
        }
        let users_plans = user_plans(&mut users, &names);
        let mut account = domain_account(account, &names);
        account.calling_plans.extend(users_plans);
        Ok(AccountPanel { account, product_plans, sip_lines })
    }

    async fn sip_lines(&self, number: &str) -> Result<Vec<SipLine>, ProviderError> {
        let account = self.lookup(number).await?;
        Ok(self.lines_of(&account.id).await?.1)
    }

    async fn create_account(&self, new: &NewAccount) -> Result<Account, ProviderError> {
        let defaults = self.inner.cfg.create_defaults.as_ref().ok_or_else(|| {
            ProviderError::Misconfigured(
                "account_defaults (time_zone, regulatory_type) are needed to create accounts".into(),
            )
        })?;
        let body = wire::NewAccount {
            partition_id: &self.inner.cfg.partition_id,
            account_number: &new.number,
            account_name: &new.name,
            account_type: match new.account_type {
                AccountType::Simple => "SIMPLE",
                AccountType::Advanced => "ADVANCED",
            },
            billing_cycle_day: new.billing_cycle_day,
            dialing_behavior_type: new.dialing_behavior.as_str(),
            extension_length: new.extension_length,
            time_zone: &defaults.time_zone,
            regulatory_type: &defaults.regulatory_type,
            inbound_rate_plan_product_id: defaults.inbound_rate_plan_product_id.as_deref(),
            platform_type: defaults.platform_type.as_deref(),
            status: new.status.as_str(),
        };
        let body = serde_json::to_vec(&body).expect("a struct of text is JSON");
        let url = self.inner.url(&["account"]);
        let kind = Kind::Mutation { check: CHECK_CREATE };
        let created: wire::Account =
            self.inner.call("POST account", Method::POST, url, Some(body), kind).await.map_err(|e| match e {
                // Creating needs no entity but the partition: a 404 is a wrong URL or partition.
                CallError::NotFound(m) => wrong_url(m, "triggers.account.api_url, triggers.account.partition_id"),
                CallError::Failed(e) => e,
            })?;
        let names = self.plan_names(created.calling_plans.iter()).await.unwrap_or_default();
        Ok(domain_account(created, &names))
    }

    async fn set_status(&self, number: &str, status: DesiredStatus) -> Result<StatusChange, ProviderError> {
        let account = self.lookup(number).await?;
        if account.status == status.as_str() {
            return Ok(StatusChange::AlreadySet);
        }
        let body = serde_json::to_vec(&wire::StatusPatch { status: status.as_str() }).expect("JSON");
        let url = self.inner.url(&["account", &account.id]);
        let kind = Kind::Mutation { check: CHECK_STATUS };
        // A 2xx is the answer; whatever body comes with it is not needed.
        self.inner
            .call_with("PATCH account", Method::PATCH, url, Some(body), kind, |_| Ok(()))
            .await
            .map_err(account_scoped)?;
        Ok(StatusChange::Changed)
    }

    async fn delete_account(&self, number: &str) -> Result<(), ProviderError> {
        let account = self.lookup(number).await?;
        // Alianza refuses to delete an account that still has telephone numbers (with a 400 whose
        // code the spec never names): read them first, so the caller learns which ones.
        let numbers = self.telephone_numbers(&account.id).await?;
        if !numbers.is_empty() {
            let numbers = numbers.into_iter().map(|n| n.phone_number).collect();
            return Err(ProviderError::NumbersAssigned { vendor: "Alianza", domain: DOMAIN, numbers });
        }
        let url = self.inner.url(&["account", &account.id]);
        let kind = Kind::Mutation { check: CHECK_DELETE };
        self.inner
            .call_with("DELETE account", Method::DELETE, url, None, kind, |_| Ok(()))
            .await
            .map_err(account_scoped)
            .map_err(|e| match e {
                // Whatever the 400 says (numbers assigned since, a lifecycle event in progress), the
                // account's state refuses the delete: the vendor's message says why.
                ProviderError::Rejected { fault, .. } if fault.http_status == Some(400) => {
                    ProviderError::Rejected { kind: Rejection::DeleteRefused, fault }
                }
                e => e,
            })?;
        Ok(())
    }
}

mod transport;
