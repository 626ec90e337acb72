//! The provider registry: `providers.d/*.yaml` in, validated and built tenants out.
//!
//! Each file is one tenant. Loading validates every file (all problems of all files at once),
//! then builds each tenant's triggers (vendor clients) and serves them. Reloads swap one tenant
//! at a time: calls already running keep the `Arc<Tenant>` they started with, new calls get the
//! new one. A file that stops being valid keeps its last good version served, and its problems
//! are reported (log, RegistryService, a failed-reload counter). Removing a file removes its tenant.

pub mod events;
pub mod file;
pub mod provider;
pub mod read;
pub mod secrets;
mod tenant;
pub mod watch;
pub mod yaml;

use std::{
    collections::{BTreeMap, HashMap},
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

pub use file::{Diagnostic, TenantSpec};
pub use provider::{Area, AreaEntry, BuildDeps, SimHost, Trigger};
use read::{is_tenant_file, tenant_paths, twin_file};
use secrets::SecretResolver;
use sha2::{Digest, Sha256};
pub use tenant::{Tenant, TriggerInfo};

use crate::ops::{ApiError, auth::TokenHash};

/// The trigger areas a registry knows, in the order `app.rs` lists them. The registry does not
/// know the areas themselves: they are handed in, so it imports nothing above it.
pub type Areas = Arc<[&'static AreaEntry]>;

/// What a load or reload changed.
#[derive(Debug, Default, Clone)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Every problem found; those files keep serving their last good version, if any.
    pub diagnostics: Vec<Diagnostic>,
}

/// What building tenants needs from the rest of the process.
#[derive(Clone)]
pub struct BuildContext {
    pub http: reqwest::Client,
    /// Where the vendor clients count their calls.
    pub metrics: crate::ops::metrics::Metrics,
    pub sims: Arc<SimHost>,
    pub http_base_url: String,
    /// Vendor clients' farewells (logouts), waited for briefly when the server stops.
    pub farewells: tokio_util::task::TaskTracker,
    /// Vendor HTTP calls one tenant may have in flight at once (all its providers together).
    pub vendor_in_flight: usize,
    /// Where vendor clients report refused credentials (the events area reads it).
    pub refusals: crate::ops::vendor::CredentialRefusals,
    /// Vendor calls neither counted, traced nor limited (`Limits::bare`: measurement only).
    pub bare: bool,
}

impl BuildContext {
    /// A context of its own for a registry outside a server (`patchbay validate`-like tools,
    /// tests, benches): a fresh HTTP client and metrics, no simulators, callbacks at
    /// `http://127.0.0.1:8080`, the server's default of 32 vendor calls in flight per tenant.
    pub fn standalone() -> Self {
        Self {
            http: reqwest::Client::new(),
            metrics: Default::default(),
            sims: Arc::new(SimHost::new()),
            http_base_url: "http://127.0.0.1:8080".into(),
            farewells: Default::default(),
            vendor_in_flight: 32,
            refusals: Default::default(),
            bare: false,
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    areas: Areas,
    build: BuildContext,
    secrets: Arc<dyn SecretResolver>,
    served: RwLock<Served>,
    /// Reload bookkeeping. Held only briefly, never across a file read or a validation, so that
    /// GetTenant (which reads a tenant's file problems) never waits for a reload.
    files: Mutex<HashMap<PathBuf, FileState>>,
    /// Held for a whole reload pass: passes run one at a time.
    reloading: Mutex<()>,
    reload_failures: AtomicU64,
    generation: tokio::sync::watch::Sender<u64>,
    /// Full re-reads (SIGHUP, ReloadConfig), handed to every build ([`BuildDeps::full_reloads`]).
    full_reloads: Arc<AtomicU64>,
}

#[derive(Default)]
struct Served {
    tenants: HashMap<String, Arc<Tenant>>,
    /// Which tenants each token may act for: tells a wrong token from another tenant's token.
    tokens: HashMap<TokenHash, Vec<String>>,
}

#[derive(Default)]
struct FileState {
    /// SHA-256 of the bytes last read: an unchanged file is not validated again on a file event.
    bytes_digest: [u8; 32],
    /// The tenant this file serves, if any version of it was ever valid.
    serves: Option<String>,
    /// Problems of the newest version, when it was rejected.
    errors: Vec<Diagnostic>,
}

/// The outcome of reading, validating and building one file.
enum Outcome {
    Gone,
    Same,
    /// `tenant` is `None` when the file and its secrets are unchanged: keep the served version.
    Valid {
        tenant: Option<Box<Tenant>>,
        id: String,
        /// SHA-256 of the bytes read.
        digest: [u8; 32],
        /// The same tenant's file with the other extension, if there is one (looked up here, in
        /// parallel and with no lock held, rather than while swapping in).
        twin: Option<PathBuf>,
    },
    /// The problems, and the digest of the bytes read (`None`: unreadable).
    Invalid(Vec<Diagnostic>, Option<[u8; 32]>),
}

impl Registry {
    /// An empty registry for the tenant files of `dir`; nothing is read until a load.
    pub fn new(dir: impl Into<PathBuf>, areas: Areas, build: BuildContext, secrets: Arc<dyn SecretResolver>) -> Self {
        let (generation, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                areas,
                build,
                secrets,
                served: RwLock::default(),
                files: Mutex::default(),
                reloading: Mutex::default(),
                reload_failures: AtomicU64::new(0),
                generation,
                full_reloads: Arc::default(),
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The first load. `strict`: any problem in any file serves nothing and returns them all.
    /// Otherwise the valid tenants are served and the problems reported.
    pub fn load(&self, strict: bool) -> Result<ReloadReport, Vec<Diagnostic>> {
        let paths = match self.list_dir() {
            Ok(paths) => paths,
            Err(err) if strict => return Err(vec![self.dir_error(&err)]),
            Err(_) => return Ok(self.reload_all()),
        };
        let _pass = self.inner.reloading.lock().unwrap_or_else(|e| e.into_inner());
        self.apply(&paths, true, strict)
    }

    /// Re-reads every file (SIGHUP, RegistryService.ReloadConfig). Secrets are resolved again, so
    /// a rotated `${file:}` or `${env:}` secret is picked up; tenants whose file and secrets are
    /// unchanged keep their clients (and their vendor sessions).
    pub fn reload_all(&self) -> ReloadReport {
        self.inner.full_reloads.fetch_add(1, Ordering::Relaxed);
        let paths = match self.list_dir() {
            Ok(p) => p,
            Err(err) => {
                let report = ReloadReport { diagnostics: vec![self.dir_error(&err)], ..Default::default() };
                self.inner.reload_failures.fetch_add(1, Ordering::Relaxed);
                return report;
            }
        };
        let _pass = self.inner.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<PathBuf> =
            self.inner.files.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        all.extend(paths);
        all.sort();
        all.dedup();
        self.apply(&all, true, false).unwrap_or_else(|diagnostics| ReloadReport { diagnostics, ..Default::default() })
    }

    /// Re-reads the named files (the file watcher). Files whose bytes did not change are skipped.
    pub fn reload_paths(&self, paths: &[PathBuf]) -> ReloadReport {
        let _pass = self.inner.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: Vec<PathBuf> = paths.iter().filter(|p| is_tenant_file(p)).cloned().collect();
        self.apply(&wanted, false, false)
            .unwrap_or_else(|diagnostics| ReloadReport { diagnostics, ..Default::default() })
    }

    /// Validates YAML text as if it were the file `file_name` (RegistryService.ValidateConfig).
    pub fn validate_text(&self, file_name: &str, text: &str) -> Vec<Diagnostic> {
        let name = Path::new(file_name);
        let stem = name.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        match file::validate(file_name, stem, text.as_bytes(), &self.inner.areas, self.inner.secrets.as_ref()) {
            Ok(_) => Vec::new(),
            Err(d) => d,
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Tenant>> {
        self.served().tenants.get(id).cloned()
    }

    /// Every served tenant, by id.
    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<_> = self.served().tenants.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Stops serving every tenant (the server is stopping): their clients are let go, and say
    /// goodbye to their vendors (see `ops::vendor`) once the last call using them ends.
    pub fn retire_all(&self) {
        let retired = std::mem::take(&mut *self.inner.served.write().unwrap_or_else(|e| e.into_inner()));
        drop(retired);
    }

    pub fn tenant_count(&self) -> usize {
        self.served().tenants.len()
    }

    /// Problems of the newest rejected version of a tenant's file (empty when it is served as is).
    pub fn file_errors(&self, id: &str) -> Vec<Diagnostic> {
        let files = self.inner.files.lock().unwrap_or_else(|e| e.into_inner());
        files.values().filter(|f| f.serves.as_deref() == Some(id)).flat_map(|f| f.errors.clone()).collect()
    }

    /// The tenant `tenant`, if `token` may act for it.
    ///
    /// A wrong token is `UNAUTHENTICATED`; a valid token of another tenant is `PERMISSION_DENIED`,
    /// whether or not `tenant` exists, so that no answer reveals another tenant's existence.
    pub fn authorize(&self, token: &TokenHash, tenant: &str) -> Result<Arc<Tenant>, ApiError> {
        let served = self.served();
        if let Some(t) = served.tenants.get(tenant) {
            // Every one of the tenant's hashes is compared, so timing does not tell which matched.
            let allowed = t.tokens.iter().fold(false, |ok, h| h.ct_eq(token) | ok);
            if allowed {
                return Ok(Arc::clone(t));
            }
        }
        if !served.tokens.contains_key(token) {
            return Err(invalid_token());
        }
        if tenant.is_empty() {
            return Err(ApiError::invalid_field("tenant", "required: the tenant id this call acts for"));
        }
        if !file::valid_tenant_id(tenant) {
            return Err(ApiError::invalid_field(
                "tenant",
                "a tenant id is 1-63 lowercase letters, digits and `-`, as its file name in providers.d",
            ));
        }
        Err(ApiError::permission_denied(
            "TENANT_ACCESS_DENIED",
            format!("this token may not act for tenant `{tenant}`"),
        ))
    }

    /// Whether any tenant accepts this token.
    pub fn knows_token(&self, token: &TokenHash) -> bool {
        self.served().tokens.contains_key(token)
    }

    /// Reloads that found a problem, since start (`/metrics`).
    /// Reloads (the first load, every reload and file event handled), since start.
    pub fn reloads(&self) -> u64 {
        *self.inner.generation.borrow()
    }

    pub fn reload_failures(&self) -> u64 {
        self.inner.reload_failures.load(Ordering::Relaxed)
    }

    /// Ticks after every reload pass; tests and watchers await it.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    fn served(&self) -> std::sync::RwLockReadGuard<'_, Served> {
        self.inner.served.read().unwrap_or_else(|e| e.into_inner())
    }

    fn list_dir(&self) -> io::Result<Vec<PathBuf>> {
        tenant_paths(&self.inner.dir)
    }

    fn dir_error(&self, err: &io::Error) -> Diagnostic {
        Diagnostic::whole_file(
            &self.inner.dir.display().to_string(),
            format!("cannot read the providers directory: {err}"),
        )
    }

    fn validate_bytes(&self, path: &Path, bytes: &[u8]) -> Result<TenantSpec, Vec<Diagnostic>> {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        file::validate(&path.display().to_string(), stem, bytes, &self.inner.areas, self.inner.secrets.as_ref())
    }

    /// Reads, validates and builds `paths`, then swaps the results in. `full`: validate even files
    /// whose bytes did not change (their secrets may have).
    /// `all_or_nothing`: if any file has a problem, swap nothing in and return every problem (the
    /// strict first load; one pass, so each file is read and validated once).
    /// The caller holds `reloading`.
    fn apply(&self, paths: &[PathBuf], full: bool, all_or_nothing: bool) -> Result<ReloadReport, Vec<Diagnostic>> {
        let mut report = ReloadReport::default();
        let snapshot: HashMap<&Path, ([u8; 32], Option<[u8; 32]>)> = {
            let files = self.inner.files.lock().unwrap_or_else(|e| e.into_inner());
            paths
                .iter()
                .filter_map(|p| {
                    let state = files.get(p)?;
                    let fingerprint = state.serves.as_ref().and_then(|id| self.get(id)).map(|t| t.fingerprint);
                    Some((p.as_path(), (state.bytes_digest, fingerprint)))
                })
                .collect()
        };
        // Reads and validations run with no lock held: they may take a while.
        let outcomes = parallel_map(paths, |path| {
            let known = snapshot.get(path.as_path()).copied();
            (path.clone(), self.examine(path, known, full))
        });

        if all_or_nothing {
            let mut problems = Vec::new();
            for (path, outcome) in &outcomes {
                match outcome {
                    Outcome::Invalid(d, _) => problems.extend(d.iter().cloned()),
                    Outcome::Valid { twin, .. } => {
                        if let Some(twin) = twin {
                            problems.push(Diagnostic::whole_file(
                                &path.display().to_string(),
                                format!(
                                    "this tenant is also defined by {}; keep exactly one file per tenant",
                                    twin.display()
                                ),
                            ));
                        }
                    }
                    Outcome::Gone | Outcome::Same => {}
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
        }
        let mut files = self.inner.files.lock().unwrap_or_else(|e| e.into_inner());
        for (path, outcome) in outcomes {
            match outcome {
                Outcome::Gone => {
                    if let Some(state) = files.remove(&path)
                        && let Some(id) = state.serves
                        && self.remove_tenant(&id, &path)
                    {
                        report.removed.push(id);
                    }
                }
                Outcome::Same => report.unchanged += 1,
                Outcome::Invalid(diagnostics, digest) => {
                    let state = files.entry(path.clone()).or_default();
                    state.bytes_digest = digest.unwrap_or_default();
                    state.errors = diagnostics.clone();
                    report.diagnostics.extend(diagnostics);
                }
                Outcome::Valid { tenant, id, digest, twin } => {
                    let state = files.entry(path.clone()).or_default();
                    state.bytes_digest = digest;
                    // Two files for one tenant (`acme.yaml` and `acme.yml`): the version already
                    // served, if any, stays; neither file's new content is taken.
                    if let Some(twin) = twin {
                        let d = Diagnostic::whole_file(
                            &path.display().to_string(),
                            format!(
                                "tenant `{id}` is also defined by {}; keep exactly one file per tenant",
                                twin.display()
                            ),
                        );
                        state.errors = vec![d.clone()];
                        report.diagnostics.push(d);
                        continue;
                    }
                    state.errors.clear();
                    state.serves = Some(id.clone());
                    match tenant {
                        None => report.unchanged += 1,
                        Some(tenant) => {
                            if self.swap_in(Arc::new(*tenant)) {
                                report.updated.push(id);
                            } else {
                                report.added.push(id);
                            }
                        }
                    }
                }
            }
        }
        drop(files);
        if !report.diagnostics.is_empty() {
            self.inner.reload_failures.fetch_add(1, Ordering::Relaxed);
            for d in &report.diagnostics {
                tracing::warn!(target: "patchbay::registry", "{d}");
            }
        }
        if !(report.added.is_empty() && report.updated.is_empty() && report.removed.is_empty()) {
            tracing::info!(
                added = ?report.added, updated = ?report.updated, removed = ?report.removed,
                unchanged = report.unchanged, problems = report.diagnostics.len(), "tenants reloaded"
            );
        }
        self.inner.generation.send_modify(|g| *g += 1);
        Ok(report)
    }

    /// Reads one file and decides what to do with it. Runs in parallel: touches no shared state
    /// beyond reads.
    fn examine(&self, path: &Path, known: Option<([u8; 32], Option<[u8; 32]>)>, full: bool) -> Outcome {
        let bytes = match read_tenant_file(path) {
            Ok(b) => b,
            Err(None) => return Outcome::Gone,
            Err(Some(d)) => return Outcome::Invalid(vec![d], None),
        };
        let bytes_digest: [u8; 32] = Sha256::digest(&bytes).into();
        if !full && known.is_some_and(|(d, _)| d == bytes_digest) {
            return Outcome::Same;
        }
        let spec = match self.validate_bytes(path, &bytes) {
            Ok(spec) => spec,
            Err(d) => return Outcome::Invalid(d, Some(bytes_digest)),
        };
        let spec_digest = spec.fingerprint(&bytes_digest);
        let twin = twin_file(path);
        if known.and_then(|(_, f)| f) == Some(spec_digest) {
            return Outcome::Valid { tenant: None, id: spec.id, digest: bytes_digest, twin };
        }
        let id = spec.id.clone();
        match self.build_tenant(path, spec, spec_digest) {
            Ok(tenant) => Outcome::Valid { tenant: Some(Box::new(tenant)), id, digest: bytes_digest, twin },
            Err(d) => Outcome::Invalid(vec![d], Some(bytes_digest)),
        }
    }

    fn build_tenant(&self, path: &Path, spec: TenantSpec, fingerprint: [u8; 32]) -> Result<Tenant, Diagnostic> {
        let deps = BuildDeps {
            http: self.inner.build.http.clone(),
            metrics: self.inner.build.metrics.clone(),
            sims: Arc::clone(&self.inner.build.sims),
            http_base_url: self.inner.build.http_base_url.clone(),
            tenant: spec.id.clone(),
            farewells: self.inner.build.farewells.clone(),
            // The tenant file's own limit, else the server's.
            vendor_slots: Arc::new(tokio::sync::Semaphore::new(
                spec.vendor_in_flight.unwrap_or(self.inner.build.vendor_in_flight).max(1),
            )),
            full_reloads: Arc::clone(&self.inner.full_reloads),
            refusals: self.inner.build.refusals.clone(),
            bare: self.inner.build.bare,
        };
        let mut triggers = Vec::with_capacity(spec.triggers.len());
        for (area, validated) in spec.triggers {
            let built = validated.build.build(&deps).map_err(|err| {
                let message = format!("could not start: {err:#}");
                Diagnostic::new(&path.display().to_string(), 1, 1, &format!("triggers.{area}"), &message)
            })?;
            triggers.push((TriggerInfo { area, provider: validated.provider, enabled: validated.enabled }, built));
        }
        Ok(Tenant {
            id: spec.id,
            name: spec.name,
            file: path.to_path_buf(),
            tokens: spec.tokens,
            loaded_at: SystemTime::now(),
            view: spec.view,
            events: Arc::new(spec.events),
            triggers,
            fingerprint,
        })
    }

    /// Serves `tenant`, replacing the old version if any. Returns whether it replaced one.
    fn swap_in(&self, tenant: Arc<Tenant>) -> bool {
        let mut served = self.inner.served.write().unwrap_or_else(|e| e.into_inner());
        let old = served.tenants.insert(tenant.id.clone(), Arc::clone(&tenant));
        if let Some(old) = &old {
            unindex_tokens(&mut served.tokens, old);
        }
        for token in &tenant.tokens {
            served.tokens.entry(*token).or_default().push(tenant.id.clone());
        }
        old.is_some()
    }

    fn remove_tenant(&self, id: &str, file: &Path) -> bool {
        let mut served = self.inner.served.write().unwrap_or_else(|e| e.into_inner());
        match served.tenants.get(id) {
            Some(t) if t.file == file => {
                let old = served.tenants.remove(id).expect("present");
                unindex_tokens(&mut served.tokens, &old);
                true
            }
            _ => false,
        }
    }
}

fn unindex_tokens(index: &mut HashMap<TokenHash, Vec<String>>, tenant: &Tenant) {
    for token in &tenant.tokens {
        if let Some(ids) = index.get_mut(token) {
            ids.retain(|i| i != &tenant.id);
            if ids.is_empty() {
                index.remove(token);
            }
        }
    }
}

fn invalid_token() -> ApiError {
    ApiError::unauthenticated("INVALID_TOKEN", "the bearer token is not valid")
}

/// A tenant file's bytes; `Err(None)` when it is gone, else the diagnostic of why it cannot be read.
fn read_tenant_file(path: &Path) -> Result<Vec<u8>, Option<Diagnostic>> {
    read::read_regular(path, read::MAX_TENANT_FILE_BYTES).map_err(|e| match e {
        read::ReadError::Gone => None,
        read::ReadError::Unreadable(why) => {
            Some(Diagnostic::whole_file(&path.display().to_string(), format!("this path {why}")))
        }
    })
}

/// Maps `items` on all cores, keeping their order. Runs `f` inside the current Tokio runtime, if
/// any, so that building a trigger may start an in-process simulator.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().max(1));
    if threads <= 1 || items.len() < 64 {
        return items.iter().map(&f).collect();
    }
    let runtime = tokio::runtime::Handle::try_current().ok();
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let f = &f;
                let runtime = runtime.clone();
                scope.spawn(move || {
                    let _guard = runtime.as_ref().map(|r| r.enter());
                    part.iter().map(f).collect::<Vec<R>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a registry worker panicked")).collect()
    })
}

impl TenantSpec {
    /// Identifies the file's bytes together with its resolved secrets.
    fn fingerprint(&self, bytes_digest: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(bytes_digest);
        h.update(self.secrets_digest);
        h.finalize().into()
    }
}

/// Diagnostics grouped by file, for printing.
pub fn group_by_file(diagnostics: &[Diagnostic]) -> BTreeMap<&str, Vec<&Diagnostic>> {
    let mut map: BTreeMap<&str, Vec<&Diagnostic>> = BTreeMap::new();
    for d in diagnostics {
        map.entry(d.file.as_str()).or_default().push(d);
    }
    map
}

/// What `patchbay validate` found in a valid directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirSummary {
    pub files: usize,
}

/// Validates every tenant file of `dir` without building anything (`patchbay validate`): all
/// problems of all files at once. An empty directory is a problem too: it serves nobody.
pub fn validate_dir(
    dir: &Path,
    areas: &[&AreaEntry],
    secrets: &dyn SecretResolver,
) -> Result<DirSummary, Vec<Diagnostic>> {
    let shown = dir.display().to_string();
    let paths = tenant_paths(dir)
        .map_err(|e| vec![Diagnostic::whole_file(&shown, format!("cannot read the providers directory: {e}"))])?;
    if paths.is_empty() {
        return Err(vec![Diagnostic::whole_file(&shown, "no tenant files (*.yaml or *.yml) in this directory")]);
    }
    let mut diagnostics = Vec::new();
    for path in &paths {
        let name = path.display().to_string();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let result = read_tenant_file(path)
            .map_err(|d| vec![d.unwrap_or_else(|| Diagnostic::whole_file(&name, "was removed while being read"))])
            .and_then(|bytes| file::validate(&name, stem, &bytes, areas, secrets));
        match result {
            Err(d) => diagnostics.extend(d),
            Ok(_) => {
                if let Some(twin) = twin_file(path) {
                    diagnostics.push(Diagnostic::whole_file(
                        &name,
                        format!("this tenant is also defined by {}; keep exactly one file per tenant", twin.display()),
                    ));
                }
            }
        }
    }
    if diagnostics.is_empty() { Ok(DirSummary { files: paths.len() }) } else { Err(diagnostics) }
}
