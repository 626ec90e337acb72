//! How the family's API scripts are called: every call is one POST of a form body to the one
//! script, carrying `function`, `source`, `user` and `pass` (form bodies rather than the
//! documents' query strings, so that batches are not limited by URL length and passwords stay
//! out of access logs). Both providers (Elision, stock VICIdial) send through [`FamilyApi`].
//!
//! What a call that brings no usable answer becomes:
//! - a read is retried with backoff, then is [`DialerError::Unavailable`];
//! - a mutation is sent once. If the dialer provably did not take it (no connection; HTTP 503,
//!   429 or 408, which web servers and proxies answer without running the API script) it is
//!   [`DialerError::Unavailable`], safe to send again. Otherwise (a timeout, any other 5xx, an
//!   unreadable or oversized answer) it is [`DialerError::OutcomeUnknown`]: a PHP 500 may come
//!   after a partial insert and a proxy's 502/504 after the script ran, so it is never resent
//!   blindly.
//!
//! The family's lockout (10 failed logins lock the API user for 15 minutes, and every call logs
//! in) is never reached through patchbay: after the first refused login a client sends nothing
//! more, answering that refusal, until it is rebuilt (its tenant file changed) or an operator
//! reloads the configuration; and at most [`MAX_IN_FLIGHT`] calls are in flight at once, so the
//! calls already sent when the password went wrong cannot add up to ten failures.
//!
//! No message ever quotes an answer's body (it may echo a password in any encoding) or the
//! endpoint's credentials or query string.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::{
    answer::{self, Line, Subject, classify_line},
    scrub::Scrubber,
};
use crate::{
    dialer::provider::{DialerError, LoginState, Refusal},
    ops::{retry::Backoff, vendor::VendorHttp},
};

/// Default time to wait for one answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads are retried on 5xx, timeouts and unreadable answers.
pub const READ_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2), 3);
/// Calls of one client in flight at once, at most: below the family's 10-failure lockout, so
/// that the calls already on their way when a password stops working cannot lock the API user.
pub const MAX_IN_FLIGHT: usize = 9;
/// The tenant key that a misconfiguration visible in an answer points at.
const API_URL_KEY: &str = "triggers.dialer.api_url";

/// Who is calling and where: one provider's view of one tenant's API script.
#[derive(Debug, Clone)]
pub struct FamilyApi {
    http: VendorHttp,
    endpoint: reqwest::Url,
    /// The endpoint as messages may show it: no credentials, query or fragment.
    shown_endpoint: String,
    source: String,
    user: SecretString,
    pass: SecretString,
    timeout: Duration,
    read_retry: Backoff,
    max_answer_bytes: usize,
    /// The provider's registry name (`elision`), for errors.
    provider: &'static str,
    /// ErrorInfo domain of what the dialer decided (`elision.com`).
    domain: &'static str,
    gate: Arc<LoginGate>,
    slots: Arc<Semaphore>,
}

/// Why a call brought back nothing usable; the read or mutation it was decides what that means.
#[derive(Debug)]
pub enum Failure {
    /// The dialer answered, and said no (or its answer shows a misconfiguration).
    Refused(DialerError),
    /// No usable answer. `maybe_applied: false` only when the dialer provably did not run the call.
    NoAnswer { maybe_applied: bool, message: String },
}

/// The API login as the calls found it, and the refusal that stops further calls.
#[derive(Debug)]
struct LoginGate {
    state: Mutex<GateState>,
    /// The configuration's full re-reads ([`crate::registry::BuildDeps::full_reloads`]).
    full_reloads: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct GateState {
    login: LoginState,
    /// The refusal answered without calling, and the full re-read count when it came.
    refused: Option<(DialerError, u64)>,
}

impl LoginGate {
    /// The refusal to answer instead of calling, unless an operator reloaded since.
    fn stopped(&self) -> Option<DialerError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (err, at) = state.refused.as_ref()?;
        if *at != self.full_reloads.load(Ordering::Relaxed) {
            *state = GateState::default();
            return None;
        }
        Some(err.clone())
    }

    fn record(&self, result: &Result<String, Failure>, refusal: Option<DialerError>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match refusal {
            Some(err) => {
                state.login = LoginState::Refused;
                state.refused.get_or_insert((err, self.full_reloads.load(Ordering::Relaxed)));
            }
            None if result.is_ok() && state.refused.is_none() => state.login = LoginState::Working,
            None => {}
        }
    }
}

/// `url` without what must never be shown: user name, password, query and fragment.
pub fn shown_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// The provider-specific parts of a [`FamilyApi`].
#[derive(Debug, Clone, Copy)]
pub struct Vendor {
    pub provider: &'static str,
    pub domain: &'static str,
    pub max_answer_bytes: usize,
}

impl FamilyApi {
    pub fn new(
        vendor: Vendor,
        http: VendorHttp,
        endpoint: reqwest::Url,
        source: impl Into<String>,
        user: SecretString,
        pass: SecretString,
    ) -> Self {
        Self {
            http,
            shown_endpoint: shown_url(&endpoint),
            endpoint,
            source: source.into(),
            user,
            pass,
            timeout: DEFAULT_TIMEOUT,
            read_retry: READ_RETRY,
            max_answer_bytes: vendor.max_answer_bytes,
            provider: vendor.provider,
            domain: vendor.domain,
            gate: Arc::new(LoginGate { state: Mutex::default(), full_reloads: Arc::default() }),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Counts the configuration's full re-reads from `counter`: a stop after a refused login ends
    /// at the next one.
    pub fn with_full_reloads(mut self, counter: Arc<AtomicU64>) -> Self {
        self.gate = Arc::new(LoginGate { state: Mutex::default(), full_reloads: counter });
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_read_retry(mut self, retry: Backoff) -> Self {
        self.read_retry = retry;
        self
    }

    pub fn domain(&self) -> &'static str {
        self.domain
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The API login as the calls last found it.
    pub fn login_state(&self) -> LoginState {
        self.gate.stopped();
        self.gate.state.lock().unwrap_or_else(|e| e.into_inner()).login
    }

    /// Removes from answers the secrets they may echo: the API password, plus the call's own.
    pub fn scrubber<'a>(&'a self, extra: impl IntoIterator<Item = &'a str>) -> Scrubber {
        Scrubber::new(std::iter::once(self.pass.expose_secret()).chain(extra))
    }

    /// One call with the API login: the answer's body, or why there is none usable. After a
    /// refused login nothing is sent (see the module's note on the lockout).
    pub async fn post(&self, function: &'static str, params: &[(&str, &str)]) -> Result<String, Failure> {
        if let Some(err) = self.gate.stopped() {
            return Err(Failure::Refused(err));
        }
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 4);
        form.extend([
            ("function", function),
            ("source", self.source.as_str()),
            ("user", self.user.expose_secret()),
            ("pass", self.pass.expose_secret()),
        ]);
        form.extend_from_slice(params);
        let result = self.send(function, &form).await;
        let refusal = match &result {
            Ok(body) => self.login_refusal(body),
            Err(_) => None,
        };
        self.gate.record(&result, refusal.clone());
        if let Some(err) = &refusal {
            self.http.credentials_refused(&err.to_string());
        }
        match refusal {
            Some(err) => Err(Failure::Refused(err)),
            None => result,
        }
    }

    /// One call without any login (stock VICIdial's `version`).
    pub async fn post_anonymous(&self, function: &'static str) -> Result<String, Failure> {
        self.send(function, &[("function", function)]).await
    }

    async fn send(&self, function: &'static str, form: &[(&str, &str)]) -> Result<String, Failure> {
        let _slot = self.slots.acquire().await.map_err(|_| Failure::NoAnswer {
            maybe_applied: false,
            message: format!("{function}: the dialer client is shutting down"),
        })?;
        let request = self.http.client().post(self.endpoint.clone()).timeout(self.timeout).form(form);
        let answer = self
            .http
            .exchange(function, request, self.max_answer_bytes)
            .await
            .map_err(|e| transport_failure(function, &e, self.timeout))?;
        if !answer.status.is_success() {
            return Err(self.status_failure(function, answer.status));
        }
        let Some(body) = answer.body else {
            return Err(Failure::NoAnswer {
                maybe_applied: true,
                message: format!(
                    "{function}: the dialer's answer is larger than {}, so it was not read",
                    shown_size(self.max_answer_bytes)
                ),
            });
        };
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// The refusal an answer's login line says (`BAD`, `2FA`, `LOCK`, `IPBLOCK`), with the
    /// reason patchbay stopped calling.
    fn login_refusal(&self, body: &str) -> Option<DialerError> {
        let lines = answer::parse_lines(body.trim_start_matches('\u{feff}').trim()).ok()?;
        let line = lines.iter().find(|l| answer::login_result(&l.raw).is_some())?;
        let kind = classify_line(&line.raw, Subject::Agent);
        let scrub = self.scrubber([]);
        Some(self.refused(
            kind,
            scrub.scrub(&line.what()),
            format!(
                "{}; patchbay sends no further call for this tenant until its tenant file changes or an operator \
                 reloads the configuration (SIGHUP or RegistryService.ReloadConfig), so that retries cannot lock \
                 the API user out",
                scrub.scrub(&line.raw)
            ),
        ))
    }

    /// What an HTTP status other than 2xx says (the family answers 200 even for its errors, so
    /// any other status comes from PHP failing or from the web server or proxy in front of it).
    fn status_failure(&self, function: &str, status: reqwest::StatusCode) -> Failure {
        let code = status.as_u16();
        let misconfigured = |what: &str| {
            Failure::Refused(self.refused(
                Refusal::Misconfigured(API_URL_KEY),
                format!("HTTP {code}"),
                format!("{function}: {what} (HTTP {code} from {})", self.shown_endpoint),
            ))
        };
        match code {
            // Service Unavailable, Too Many Requests, Request Timeout: answered by the web server
            // or a proxy in place of the script (overload, maintenance, rate limit, a request not
            // received in full); PHP's own failures are 500. The call did not run.
            503 | 429 | 408 => Failure::NoAnswer {
                maybe_applied: false,
                message: format!("{function}: the dialer answered HTTP {status} (it did not run the call)"),
            },
            // A PHP 500 may follow a partial insert, a proxy's 502/504 a script that ran on.
            500..=599 => Failure::NoAnswer {
                maybe_applied: true,
                message: format!("{function}: the dialer answered HTTP {status}"),
            },
            404 | 410 => misconfigured("there is no dialer API script at this address"),
            405 => misconfigured("the address does not take POST calls: it is not the dialer's API script"),
            401 | 403 => misconfigured("the web server in front of the dialer refused access to the API script"),
            300..=399 => misconfigured("the address redirects elsewhere: use the API script's final address"),
            _ => Failure::Refused(self.refused(
                Refusal::Other,
                format!("HTTP {code}"),
                format!("{function}: the dialer refused the call with HTTP {status}"),
            )),
        }
    }

    /// A read, retried with backoff while no usable answer comes back.
    pub async fn read<T>(
        &self,
        function: &'static str,
        params: &[(&str, &str)],
        parse: impl Fn(&str, &Scrubber) -> Result<T, Failure>,
    ) -> Result<T, DialerError> {
        let scrub = self.scrubber([]);
        let mut made = 0;
        loop {
            made += 1;
            let result = match self.post(function, params).await {
                Ok(body) => parse(&body, &scrub),
                Err(e) => Err(e),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::NoAnswer { message, .. }) if self.read_retry.allows(made) => {
                    tracing::debug!(function, attempt = made, error = %message, "dialer read failed; retrying");
                    tokio::time::sleep(self.read_retry.delay(made)).await;
                }
                Err(Failure::NoAnswer { message, .. }) => {
                    return Err(DialerError::Unavailable {
                        domain: self.domain,
                        message: format!("{message} ({made} attempts)"),
                    });
                }
            }
        }
    }

    /// A mutation, sent once. `check` says which read tells whether it was applied when no
    /// clear answer comes back.
    pub async fn mutate<T>(
        &self,
        function: &'static str,
        params: &[(&str, &str)],
        check: impl FnOnce() -> String,
        parse: impl FnOnce(&str) -> Result<T, Failure>,
    ) -> Result<T, DialerError> {
        let result = match self.post(function, params).await {
            Ok(body) => parse(&body),
            Err(e) => Err(e),
        };
        result.map_err(|failure| self.failed(failure, check))
    }

    /// What a mutation's failure is to its caller.
    pub fn failed(&self, failure: Failure, check: impl FnOnce() -> String) -> DialerError {
        match failure {
            Failure::Refused(e) => e,
            Failure::NoAnswer { maybe_applied: false, message } => {
                DialerError::Unavailable { domain: self.domain, message }
            }
            Failure::NoAnswer { maybe_applied: true, message } => {
                DialerError::OutcomeUnknown { provider: self.provider, domain: self.domain, message, check: check() }
            }
        }
    }

    pub fn refused(&self, kind: Refusal, vendor_code: impl Into<String>, message: String) -> DialerError {
        DialerError::Refused { kind, domain: self.domain, vendor_code: vendor_code.into(), message }
    }

    /// An `ERROR` line of a text answer.
    pub fn refused_line(&self, line: &Line, subject: Subject, scrub: &Scrubber) -> Failure {
        Failure::Refused(self.refused(
            classify_line(&line.raw, subject),
            scrub.scrub(&line.what()),
            scrub.scrub(&line.raw),
        ))
    }
}

/// `4 MiB`, `64 KiB`.
fn shown_size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 { format!("{} MiB", bytes / (1024 * 1024)) } else { format!("{} KiB", bytes / 1024) }
}

/// An answer that is not one: the call may or may not have been carried out. Its body is never
/// quoted (it may echo a password in a form no scrubber knows); its size and shape help debugging.
pub fn bad_answer(why: &str, body: &str) -> Failure {
    let shape = match body.trim_start_matches('\u{feff}').trim_start().chars().next() {
        None => "empty",
        Some('<') => "it looks like an HTML or XML page",
        Some('{' | '[') => "it looks like JSON",
        Some(_) => "text",
    };
    Failure::NoAnswer {
        maybe_applied: true,
        message: format!("the dialer's answer could not be read: {why} ({} bytes; {shape})", body.len()),
    }
}

fn transport_failure(function: &str, e: &reqwest::Error, timeout: Duration) -> Failure {
    // Messages are made here, never from reqwest's (which name the URL).
    if e.is_connect() {
        // Before any byte of the request went out (refused, unreachable, TLS handshake).
        Failure::NoAnswer { maybe_applied: false, message: format!("{function}: cannot connect to the dialer") }
    } else if e.is_timeout() {
        Failure::NoAnswer {
            maybe_applied: true,
            message: format!("{function}: no answer from the dialer within {} s", timeout.as_secs_f32()),
        }
    } else {
        Failure::NoAnswer {
            maybe_applied: true,
            message: format!("{function}: the connection to the dialer broke before its answer was read"),
        }
    }
}
