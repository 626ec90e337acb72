//! How a service area and its providers plug into the registry.
//!
//! A service area (account, dialer, provisioning) implements [`Area`]: its key under `triggers:`,
//! the runtime type a tenant holds for it, and its table of providers. A provider is one
//! [`ProviderSpec`] line in that table: a name (the YAML `provider:` value), a pure `validate`
//! that turns the trigger's YAML into something that can be built, and its JSON Schema.
//!
//! Validate, then build (as Vector's components do): `validate` does no I/O except resolving
//! secrets through the injected resolver, and reports every problem it finds into the
//! [`ValidateCtx`]; `build` makes the client from an already-valid config.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use schemars::{Schema, SchemaGenerator, json_schema};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::ops::{
    metrics::Metrics,
    vendor::{CredentialRefusals, VendorHttp},
};

use super::{
    secrets::{SecretRef, SecretResolver},
    yaml::{self, KeyPath, Seg, Target, Value},
};

/// Problems reported per file, at most (one mistake repeated a thousand times needs one fix);
/// the diagnostics then end with one line saying there are more.
pub const MAX_PROBLEMS: usize = 100;

/// A problem in a tenant file, before it is given a file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: KeyPath,
    pub target: Target,
    pub message: String,
}

/// Collects a provider's problems, resolves its secrets, and remembers which keys are secret.
pub struct ValidateCtx<'a> {
    base: KeyPath,
    problems: &'a mut Vec<Problem>,
    secrets: &'a dyn SecretResolver,
    secrets_seen: &'a mut Vec<SecretSeen>,
}

/// A secret key of a tenant file and a digest of its resolved value (never the value): the
/// digest tells a reload whether a rotated secret changed the tenant.
#[derive(Debug, Clone)]
pub struct SecretSeen {
    pub path: KeyPath,
    pub digest: [u8; 32],
}

impl<'a> ValidateCtx<'a> {
    pub fn new(
        base: KeyPath,
        problems: &'a mut Vec<Problem>,
        secrets: &'a dyn SecretResolver,
        secrets_seen: &'a mut Vec<SecretSeen>,
    ) -> Self {
        Self { base, problems, secrets, secrets_seen }
    }

    /// A context for a part of this one (`triggers.account` below the file's root), sharing its lists.
    pub fn child(&mut self, rel: &str) -> ValidateCtx<'_> {
        ValidateCtx {
            base: self.path(rel),
            problems: self.problems,
            secrets: self.secrets,
            secrets_seen: self.secrets_seen,
        }
    }

    /// The absolute path of a key given relative to this context (`"custom_sip_table.dial_number"`).
    pub fn path(&self, rel: &str) -> KeyPath {
        self.base.join(&KeyPath::parse(rel))
    }

    /// Records a problem with the value at `rel` (`""` is the trigger itself).
    pub fn problem(&mut self, rel: &str, message: impl Into<String>) {
        let path = self.path(rel);
        self.problems.push(Problem { path, target: Target::Value, message: message.into() });
    }

    /// Records a problem with the key at `rel` itself (an alias set twice, a key not allowed here).
    pub fn problem_at_key(&mut self, rel: &str, message: impl Into<String>) {
        let path = self.path(rel);
        self.problems.push(Problem { path, target: Target::Key, message: message.into() });
    }

    /// Deserializes the whole trigger (or a part of it) into `T`, recording every problem.
    /// Use `#[serde(deny_unknown_fields)]` on `T` so that typos are caught.
    ///
    /// serde stops at the first problem, so each problem's node is pruned from a copy and the
    /// copy read again, until it reads cleanly: one mistake never hides the next.
    pub fn deserialize<T: DeserializeOwned>(&mut self, value: &Value) -> Option<T> {
        let mut value = std::borrow::Cow::Borrowed(value);
        let mut pruned: Vec<KeyPath> = Vec::new();
        let mut failed = false;
        // Each pass prunes a node, so the passes are bounded by the document's size; past
        // MAX_PROBLEMS no more are reported, so none is looked for (each pass reads it all).
        for _ in 0..256 {
            if self.problems.len() > MAX_PROBLEMS {
                return None;
            }
            let (rel, message) = match yaml::deserialize::<T>(&value) {
                Ok(v) => return (!failed).then_some(v),
                Err(e) => e,
            };
            if let Some(field) = backticked(&message, "missing field `")
                && pruned.contains(&rel.key(&field))
            {
                // We pruned that key; its problem is recorded. serde reports a missing field after
                // reading the mapping's other keys, so the mapping itself can go now.
                if rel.is_root() || !prune(value.to_mut(), &rel) {
                    return None;
                }
                pruned.push(rel);
                continue;
            }
            failed = true;
            let (node, target, message) = classify(rel, message);
            self.problems.push(Problem { path: self.base.join(&node), target, message });
            match prune_node(value.to_mut(), &node) {
                Some(done) => pruned.push(done),
                None => return None,
            }
        }
        None
    }

    /// Resolves the secret at `rel`. Its key is remembered so that RegistryService redacts it.
    pub fn secret(&mut self, rel: &str, secret: &SecretRef) -> Option<SecretString> {
        let path = self.path(rel);
        match self.secrets.resolve(secret) {
            Ok(v) => {
                use secrecy::ExposeSecret;
                use sha2::Digest;
                let digest = sha2::Sha256::digest(v.expose_secret().as_bytes()).into();
                self.secrets_seen.push(SecretSeen { path, digest });
                Some(v)
            }
            Err(message) => {
                self.problems.push(Problem { path, target: Target::Value, message });
                None
            }
        }
    }

    /// Resolves the secret at `rel`, as [`ValidateCtx::secret`], and checks its value's rule
    /// (`check` says what is wrong, never quoting the value). The rule is not checked for a
    /// reference the resolver does not read (`validate --skip-secrets`): only its syntax is.
    pub fn secret_checked(
        &mut self,
        rel: &str,
        secret: &SecretRef,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Option<SecretString> {
        let value = self.secret(rel, secret)?;
        let read = self.secrets.reads_references() || matches!(secret, SecretRef::Literal(_));
        if read {
            use secrecy::ExposeSecret;
            if let Err(message) = check(value.expose_secret()) {
                self.problem(rel, message);
            }
        }
        Some(value)
    }

    /// Problems recorded so far (by this and earlier contexts of the same file).
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }
}

/// The key of a setting as the operator wrote it: `alias` (e.g. the CRM's `API_PASSWORD`) if the
/// trigger mapping uses it, else `canonical`. Secrets and problems are recorded under it, so that
/// RegistryService redacts the key that is really in the file and diagnostics point at it.
pub fn key_as_written<'a>(raw: &Value, canonical: &'a str, alias: &'a str) -> &'a str {
    if raw.get(alias).is_some() { alias } else { canonical }
}

/// Where a serde problem points, and how to say it.
fn classify(rel: KeyPath, message: String) -> (KeyPath, Target, String) {
    let ends_with = |path: &KeyPath, field: &str| matches!(path.0.last(), Some(Seg::Key(k)) if k == field);
    if let Some(field) = backticked(&message, "unknown field `") {
        // Point at the unknown key itself, not at the mapping that holds it.
        let path = if ends_with(&rel, &field) { rel } else { rel.key(&field) };
        return (path, Target::Key, message);
    }
    if let Some(field) = backticked(&message, "duplicate field `") {
        let path = if ends_with(&rel, &field) { rel } else { rel.key(&field) };
        let message = format!(
            "`{field}` is set twice: it and one of its aliases (e.g. the CRM's name for it) name the same setting; keep one"
        );
        return (path, Target::Key, message);
    }
    (rel, Target::Value, message)
}

/// Removes the node at `path` so that the next pass reads past it. A sequence item cannot go
/// without shifting its siblings' indices, so its whole sequence goes. Returns what was removed.
fn prune_node(root: &mut Value, path: &KeyPath) -> Option<KeyPath> {
    let mut path = path.clone();
    while matches!(path.0.last(), Some(Seg::Index(_))) {
        path.0.pop();
    }
    (!path.is_root() && prune(root, &path)).then_some(path)
}

/// Removes the mapping entry at `path` (whose last step is a key).
fn prune(root: &mut Value, path: &KeyPath) -> bool {
    let Some((Seg::Key(last), parent)) = path.0.split_last() else { return false };
    let mut node = root;
    for seg in parent {
        node = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(n) => n,
                None => return false,
            },
            (Seg::Index(i), Value::Sequence(items)) => match items.get_mut(*i) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Mapping(m) => m.remove(last.as_str()).is_some(),
        _ => false,
    }
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

/// Makes an area's runtime trigger from a validated config.
pub trait BuildTrigger<T>: Send + Sync {
    /// May start in-process simulators (through `deps.sims`); never fails on valid config except
    /// for such local resources.
    fn build(&self, deps: &BuildDeps) -> anyhow::Result<T>;
}

/// A provider's pure validation: the trigger's YAML in, something buildable out (or `None`, with
/// every problem recorded in the context).
pub type ValidateFn<T> = fn(&Value, &mut ValidateCtx<'_>) -> Option<Box<dyn BuildTrigger<T>>>;

/// One provider of an area: the registration line.
pub struct ProviderSpec<T: 'static> {
    /// The YAML `provider:` value.
    pub name: &'static str,
    /// Pure validation of the whole trigger mapping (its `provider` and `enabled` keys included).
    pub validate: ValidateFn<T>,
    /// JSON Schema of the trigger mapping, for `patchbay schema`.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Its simulator on its own, for `patchbay sim <name>`; `None` in a build without the
    /// `simulators` feature (write it as `simulator!(sim::DEMO)`).
    pub simulator: Option<DemoSim>,
}

/// A vendor simulator that `patchbay sim` runs on its own, seeded with the demo tenant's data.
#[derive(Clone, Copy)]
pub struct DemoSim {
    /// One line for `patchbay sim --help`: the vendor and the demo data it holds.
    pub about: &'static str,
    /// Starts it on `addr` on the current Tokio runtime (port 0 picks a free port).
    pub start: fn(SocketAddr) -> io::Result<RunningSim>,
}

/// A simulator serving on its own: its base URL, and what keeps it serving (dropping it stops it).
pub struct RunningSim {
    pub url: String,
    pub guard: Box<dyn Any + Send>,
}

/// Whether this build has the vendor simulators (`api_url: simulator`, `patchbay sim`): the
/// `simulators` feature, on by default; a production build may leave it out.
pub const HAS_SIMULATORS: bool = cfg!(feature = "simulators");

/// The problem of `api_url: simulator` in a build without simulators, recorded at `rel`; `true`
/// when the simulator may be used.
pub fn simulator_allowed(ctx: &mut ValidateCtx<'_>, rel: &str) -> bool {
    if !HAS_SIMULATORS {
        ctx.problem(rel, "`simulator`: this build of patchbay has no simulators (built without the `simulators` feature); give the vendor's URL");
    }
    HAS_SIMULATORS
}

/// A service area that tenants configure under `triggers.<KEY>`.
pub trait Area: 'static {
    const KEY: &'static str;
    /// What a tenant holds for this area once built: settings plus the provider's client.
    type Trigger: Send + Sync + 'static;
    fn providers() -> &'static [ProviderSpec<Self::Trigger>];
}

/// A built trigger, as a tenant holds it.
#[derive(Debug)]
pub struct Trigger<T> {
    pub provider: &'static str,
    pub enabled: bool,
    pub inner: T,
}

impl<T> std::ops::Deref for Trigger<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// What building a trigger may use.
#[derive(Clone)]
pub struct BuildDeps {
    /// The one pooled HTTP client of the process.
    pub http: reqwest::Client,
    /// Where the vendor clients count their calls.
    pub metrics: Metrics,
    /// In-process simulators, for `api_url: simulator`.
    pub sims: Arc<SimHost>,
    /// Base URL of this server's HTTP listener (`http://127.0.0.1:8080`), for vendor callbacks.
    pub http_base_url: String,
    /// The tenant being built.
    pub tenant: String,
    /// Where a dropped vendor client's last requests (a logout) are tracked.
    pub farewells: tokio_util::task::TaskTracker,
    /// The tenant's vendor-call slots, shared by all its providers.
    pub vendor_slots: Arc<tokio::sync::Semaphore>,
    /// Counts full re-reads of the configuration (SIGHUP, ReloadConfig), which keep an unchanged
    /// tenant's clients: a client that stopped calling its vendor after a refused login (so as
    /// not to lock the account out) starts again once an operator asks for one.
    pub full_reloads: Arc<std::sync::atomic::AtomicU64>,
    /// Where vendor clients report refused credentials.
    pub refusals: CredentialRefusals,
    /// Vendor calls neither counted, traced nor limited (`Limits::bare`: measurement only).
    pub bare: bool,
}

impl BuildDeps {
    /// The handle a vendor client of this tenant sends its requests through: every call counted
    /// and traced under `provider` (see `ops::vendor`).
    pub fn vendor_http(&self, provider: &'static str) -> VendorHttp {
        let http = VendorHttp::new(self.http.clone(), self.metrics.clone(), provider, self.tenant.clone())
            .with_refusals(self.refusals.clone())
            .with_farewells(self.farewells.clone());
        if self.bare { http.uninstrumented() } else { http.with_slots(Arc::clone(&self.vendor_slots)) }
    }
}

/// In-process simulators, started on first use and shared by every tenant that names `simulator`.
#[derive(Default)]
pub struct SimHost {
    started: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl SimHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// The running simulator of type `T`, started by `start` if this is the first use.
    pub fn get_or_start<T: Any + Send + Sync>(&self, start: impl FnOnce() -> io::Result<T>) -> io::Result<Arc<T>> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sim) = started.get(&TypeId::of::<T>()) {
            return Ok(Arc::clone(sim).downcast::<T>().expect("keyed by TypeId"));
        }
        let sim = Arc::new(start()?);
        started.insert(TypeId::of::<T>(), sim.clone());
        Ok(sim)
    }

    /// The running simulator of type `T`, if one was started.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        started.get(&TypeId::of::<T>()).map(|s| Arc::clone(s).downcast::<T>().expect("keyed by TypeId"))
    }
}

// ---- type erasure, so that the registry holds every area in one table ----

/// A validated trigger of some area, ready to build.
pub(crate) struct ValidatedTrigger {
    pub provider: &'static str,
    pub enabled: bool,
    pub build: Box<dyn ErasedBuild>,
}

pub(crate) trait ErasedBuild: Send + Sync {
    fn build(&self, deps: &BuildDeps) -> anyhow::Result<Arc<dyn Any + Send + Sync>>;
}

struct Erased<A: Area> {
    provider: &'static str,
    enabled: bool,
    inner: Box<dyn BuildTrigger<A::Trigger>>,
}

impl<A: Area> ErasedBuild for Erased<A> {
    fn build(&self, deps: &BuildDeps) -> anyhow::Result<Arc<dyn Any + Send + Sync>> {
        let inner = self.inner.build(deps)?;
        Ok(Arc::new(Trigger { provider: self.provider, enabled: self.enabled, inner }))
    }
}

/// An area, type-erased: one line of the registry's table of areas.
pub struct AreaEntry {
    pub key: &'static str,
    pub(crate) provider_names: fn() -> Vec<&'static str>,
    /// Each provider's stand-alone simulator, by provider name.
    pub simulators: fn() -> Vec<(&'static str, DemoSim)>,
    pub(crate) validate: fn(&Value, &mut ValidateCtx<'_>) -> Option<ValidatedTrigger>,
    pub(crate) schema: fn(&mut SchemaGenerator) -> Schema,
}

impl AreaEntry {
    pub const fn of<A: Area>() -> Self {
        Self {
            key: A::KEY,
            provider_names: provider_names::<A>,
            simulators: simulators::<A>,
            validate: validate_area::<A>,
            schema: schema_area::<A>,
        }
    }
}

fn provider_names<A: Area>() -> Vec<&'static str> {
    A::providers().iter().map(|p| p.name).collect()
}

fn simulators<A: Area>() -> Vec<(&'static str, DemoSim)> {
    A::providers().iter().filter_map(|p| Some((p.name, p.simulator?))).collect()
}

fn validate_area<A: Area>(value: &Value, ctx: &mut ValidateCtx<'_>) -> Option<ValidatedTrigger> {
    let names = provider_names::<A>().join(", ");
    let Some(map) = value.as_mapping() else {
        ctx.problem("", format!("a trigger is a mapping with at least `provider:` (one of: {names})"));
        return None;
    };
    let provider = match map.get("provider") {
        None => {
            ctx.problem("", format!("missing field `provider` (one of: {names})"));
            return None;
        }
        Some(Value::String(p)) => p.as_str(),
        Some(_) => {
            ctx.problem("provider", format!("must be a provider name, one of: {names}"));
            return None;
        }
    };
    let Some(spec) = A::providers().iter().find(|p| p.name == provider) else {
        let available = if names.is_empty() { "none yet".to_owned() } else { names };
        ctx.problem(
            "provider",
            format!("unknown {} provider `{provider}`: this build of patchbay has {available}", A::KEY),
        );
        return None;
    };
    let enabled = map.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    let inner = (spec.validate)(value, ctx)?;
    Some(ValidatedTrigger {
        provider: spec.name,
        enabled,
        build: Box::new(Erased::<A> { provider: spec.name, enabled, inner }),
    })
}

fn schema_area<A: Area>(generator: &mut SchemaGenerator) -> Schema {
    let variants: Vec<Schema> = A::providers().iter().map(|p| (p.schema)(generator)).collect();
    json_schema!({ "oneOf": variants })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::secrets::SystemSecrets;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        provider: String,
        #[serde(alias = "API_USERNAME")]
        username: String,
    }

    fn run(text: &str) -> Vec<Problem> {
        let value: Value = serde_yaml::from_str(text).unwrap();
        let mut problems = Vec::new();
        let mut seen = Vec::new();
        let mut ctx = ValidateCtx::new(KeyPath::parse("triggers.account"), &mut problems, &SystemSecrets, &mut seen);
        ctx.deserialize::<Cfg>(&value);
        problems
    }

    #[test]
    fn unknown_keys_point_at_the_key() {
        let problems = run("provider: x\nusername: u\nusernme: v\n");
        assert_eq!(problems[0].path.to_string(), "triggers.account.usernme");
        assert_eq!(problems[0].target, Target::Key);
        assert!(problems[0].message.starts_with("unknown field `usernme`"), "{}", problems[0].message);
    }

    #[test]
    fn an_alias_and_its_canonical_key_both_set_is_explained() {
        let problems = run("provider: x\nusername: u\nAPI_USERNAME: v\n");
        assert_eq!(problems[0].path.to_string(), "triggers.account.username");
        assert!(problems[0].message.contains("set twice"), "{}", problems[0].message);
    }

    #[test]
    fn sims_start_once_and_are_shared() {
        let host = SimHost::new();
        let a = host.get_or_start(|| Ok(7u32)).unwrap();
        let b = host.get_or_start::<u32>(|| panic!("started twice")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(host.get::<u64>(), None);
    }
}
