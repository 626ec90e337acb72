//! The Elision client: every call is one POST of a form body to the one API script, carrying
//! `function`, `source`, `user` and `pass`. Form bodies rather than the documents' query strings,
//! so that lead batches are not limited by URL length and passwords stay out of access logs.
//!
//! What a call that brings no usable answer becomes:
//! - a read (active_lists) is retried with backoff, then is [`DialerError::Unavailable`];
//! - a mutation is sent once. If the dialer provably did not take it (no connection; HTTP 503,
//!   429 or 408, which web servers and proxies answer without running the API script) it is
//!   [`DialerError::Unavailable`], safe to send again. Otherwise (a timeout, any other 5xx, an
//!   unreadable or oversized answer) it is [`DialerError::OutcomeUnknown`]: a PHP 500 may come
//!   after a partial insert and a proxy's 502/504 after the script ran, so it is never resent.
//!
//! No message ever quotes an answer's body (it may echo a password in any encoding) or the
//! endpoint's credentials or query string.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::wire::{self, Answer, Envelope, LeadsAnswer, Prefix, Scrubber, Subject, WireLead, classify, classify_line};
use crate::{
    dialer::provider::{Ack, Agent, DialList, DialerError, DialerProvider, ExportShape, Lead, LeadOutcome, Refusal},
    ops::{retry::Backoff, vendor::VendorHttp},
};

/// Default time to wait for one answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads (active_lists) are retried on 5xx, timeouts and unreadable answers.
pub const READ_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2), 3);
/// Batches in flight at once: one dialer box serves the call centre too, so patchbay stays polite.
pub const EXPORT_CONCURRENCY: usize = 4;
/// The largest answer read (an add_multi_lead answer for 100 leads is about 10 KB; active_lists
/// of 50,000 lists about 2 MB). A bigger one is not read, and counts as an unreadable answer.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The registry name of this provider (`provider: elision`), in metrics and errors.
pub const PROVIDER: &str = "elision";
/// The tenant key that a misconfiguration visible in an answer points at.
const API_URL_KEY: &str = "triggers.dialer.api_url";

/// A client of one tenant's Elision dialer.
#[derive(Debug, Clone)]
pub struct ElisionClient {
    http: VendorHttp,
    endpoint: reqwest::Url,
    /// The endpoint as messages may show it: no credentials, query or fragment.
    shown_endpoint: String,
    source: String,
    user: SecretString,
    pass: SecretString,
    timeout: Duration,
    read_retry: Backoff,
}

/// Why a call brought back nothing usable, before the read or mutation it was decides what
/// that means for the caller.
#[derive(Debug)]
enum Failure {
    /// The dialer answered, and said no (or its answer shows a misconfiguration).
    Refused(DialerError),
    /// No usable answer. `maybe_applied: false` only when the dialer provably did not run the call.
    NoAnswer { maybe_applied: bool, message: String },
}

/// `url` without what must never be shown: user name, password, query and fragment.
fn shown_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

impl ElisionClient {
    pub fn new(
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
        }
    }

    /// How long to wait for one answer (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How reads are retried (default [`READ_RETRY`]).
    pub fn with_read_retry(mut self, retry: Backoff) -> Self {
        self.read_retry = retry;
        self
    }

    /// Removes from answers the secrets they may echo: the API password, plus the call's own.
    fn scrubber<'a>(&'a self, extra: impl IntoIterator<Item = &'a str>) -> Scrubber {
        Scrubber::new(std::iter::once(self.pass.expose_secret()).chain(extra))
    }

    /// One call: the answer's body, or why there is none usable.
    async fn post(&self, function: &'static str, params: &[(&str, &str)]) -> Result<String, Failure> {
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 4);
        form.extend([
            ("function", function),
            ("source", self.source.as_str()),
            ("user", self.user.expose_secret()),
            ("pass", self.pass.expose_secret()),
        ]);
        form.extend_from_slice(params);
        let request = self.http.client().post(self.endpoint.clone()).timeout(self.timeout).form(&form);
        let answer = self
            .http
            .exchange(function, request, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| transport_failure(function, &e, self.timeout))?;
        if !answer.status.is_success() {
            return Err(self.status_failure(function, answer.status));
        }
        let Some(body) = answer.body else {
            return Err(Failure::NoAnswer {
                maybe_applied: true,
                message: format!(
                    "{function}: the dialer's answer is larger than {} MiB, so it was not read",
                    MAX_ANSWER_BYTES / (1024 * 1024)
                ),
            });
        };
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// What an HTTP status other than 2xx says (VICIdial answers 200 even for its errors, so any
    /// other status comes from PHP failing or from the web server or proxy in front of it).
    fn status_failure(&self, function: &str, status: reqwest::StatusCode) -> Failure {
        let code = status.as_u16();
        let misconfigured = |what: &str| {
            Failure::Refused(refused(
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
            _ => Failure::Refused(refused(
                Refusal::Other,
                format!("HTTP {code}"),
                format!("{function}: the dialer refused the call with HTTP {status}"),
            )),
        }
    }

    /// A read, retried with backoff while no usable answer comes back.
    async fn read<T>(
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
                        domain: wire::DOMAIN,
                        message: format!("{message} ({made} attempts)"),
                    });
                }
            }
        }
    }

    /// A mutation, sent once. `check` says which read tells whether it was applied when no
    /// clear answer comes back.
    async fn mutate<T>(
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
        result.map_err(|failure| match failure {
            Failure::Refused(e) => e,
            Failure::NoAnswer { maybe_applied: false, message } => {
                DialerError::Unavailable { domain: wire::DOMAIN, message }
            }
            Failure::NoAnswer { maybe_applied: true, message } => {
                DialerError::OutcomeUnknown { provider: PROVIDER, domain: wire::DOMAIN, message, check: check() }
            }
        })
    }
}

/// A mutation's answer, in either style.
fn ack(body: &str, subject: Subject, scrub: &Scrubber) -> Result<Ack, Failure> {
    match wire::parse(body) {
        Ok(Answer::Text(lines)) => {
            let decisive = Answer::decisive(&lines).ok_or_else(|| bad_answer("no answer line", body))?;
            if decisive.prefix == Prefix::Error {
                return Err(refused_line(&decisive.raw, &decisive.what(), subject, scrub));
            }
            let text = lines.iter().map(|l| l.raw.as_str()).collect::<Vec<_>>().join("\n");
            Ok(Ack { vendor_message: scrub.scrub(&text) })
        }
        Ok(Answer::Json(json)) => {
            let env = envelope(json, body)?;
            if env.success {
                Ok(Ack { vendor_message: scrub.scrub(&env.message) })
            } else {
                let m = scrub.scrub(&env.message);
                Err(Failure::Refused(refused(classify(&env.message, subject), m.clone(), m)))
            }
        }
        Err(why) => Err(bad_answer(&why, body)),
    }
}

fn envelope(json: serde_json::Value, body: &str) -> Result<Envelope, Failure> {
    serde_json::from_value(json)
        .map_err(|e| bad_answer(&format!("not the JSON envelope ({})", wire::json_why(&e)), body))
}

fn refused(kind: Refusal, vendor_code: impl Into<String>, message: String) -> DialerError {
    DialerError::Refused { kind, domain: wire::DOMAIN, vendor_code: vendor_code.into(), message }
}

/// An `ERROR` line of a text answer.
fn refused_line(raw: &str, what: &str, subject: Subject, scrub: &Scrubber) -> Failure {
    Failure::Refused(refused(classify_line(raw, subject), scrub.scrub(what), scrub.scrub(raw)))
}

/// An answer that is not one: the call may or may not have been carried out. Its body is never
/// quoted (it may echo a password in a form no scrubber knows); its size and shape help debugging.
fn bad_answer(why: &str, body: &str) -> Failure {
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

/// The add_user / update_user parameters of an agent; only what is set.
fn agent_params(agent: &Agent) -> Vec<(&'static str, String)> {
    let mut p: Vec<(&'static str, String)> = vec![("agent_user", agent.user.clone())];
    let mut opt = |key: &'static str, value: Option<String>| {
        if let Some(v) = value {
            p.push((key, v));
        }
    };
    opt("agent_pass", agent.password.as_ref().map(|s| s.expose_secret().to_owned()));
    opt("agent_user_level", agent.level.map(|l| l.to_string()));
    opt("agent_full_name", agent.full_name.clone());
    opt("agent_user_group", agent.group.clone());
    opt("phone_login", agent.phone_login.clone());
    opt("phone_pass", agent.phone_password.as_ref().map(|s| s.expose_secret().to_owned()));
    opt("voicemail_id", agent.voicemail_id.clone());
    opt("email", agent.email.clone());
    opt("active", agent.active.map(|a| if a { "Y" } else { "N" }.to_owned()));
    p
}

fn agent_secrets(agent: &Agent) -> impl Iterator<Item = &str> {
    [agent.password.as_ref(), agent.phone_password.as_ref()].into_iter().flatten().map(|s| s.expose_secret())
}

fn as_refs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn wire_lead<'a>(lead: &'a Lead, list_id: &'a str) -> WireLead<'a> {
    WireLead {
        phone_number: &lead.phone_number,
        list_id,
        first_name: &lead.first_name,
        last_name: &lead.last_name,
        email: &lead.email,
        city: &lead.city,
        postal_code: &lead.postal_code,
        vendor_lead_code: &lead.vendor_lead_code,
    }
}

#[tonic::async_trait]
impl DialerProvider for ElisionClient {
    async fn create_agent(&self, agent: &Agent) -> Result<Ack, DialerError> {
        let params = agent_params(agent);
        let scrub = self.scrubber(agent_secrets(agent));
        let check = || {
            format!("send the CreateAgent again: AGENT_ALREADY_EXISTS then means that agent {} was added", agent.user)
        };
        self.mutate(wire::ADD_USER, &as_refs(&params), check, |body| ack(body, Subject::Agent, &scrub)).await
    }

    async fn update_agent(&self, agent: &Agent) -> Result<Ack, DialerError> {
        let params = agent_params(agent);
        let scrub = self.scrubber(agent_secrets(agent));
        let check = || {
            format!(
                "an update only sets values, so the same UpdateAgent of agent {} may be sent again once the dialer \
                 answers",
                agent.user
            )
        };
        self.mutate(wire::UPDATE_USER, &as_refs(&params), check, |body| ack(body, Subject::Agent, &scrub)).await
    }

    async fn create_list(&self, list: &DialList) -> Result<Ack, DialerError> {
        let params = [
            ("list_id", list.list_id.as_str()),
            ("list_name", list.name.as_str()),
            ("campaign_id", list.campaign_id.as_str()),
            ("active", if list.active { "Y" } else { "N" }),
        ];
        let scrub = self.scrubber([]);
        let check = || {
            format!(
                "ListActiveLists shows list {} if it was created active, and a CreateList of it answers \
                 LIST_ALREADY_EXISTS if it was created",
                list.list_id
            )
        };
        self.mutate(wire::ADD_LIST, &params, check, |body| ack(body, Subject::List, &scrub)).await
    }

    async fn active_lists(&self) -> Result<Vec<DialList>, DialerError> {
        self.read(wire::ACTIVE_LISTS, &[], |body, scrub| {
            let env = match wire::parse(body) {
                Ok(Answer::Json(json)) => envelope(json, body)?,
                Ok(Answer::Text(lines)) => {
                    let line = Answer::decisive(&lines).ok_or_else(|| bad_answer("no answer line", body))?;
                    return Err(refused_line(&line.raw, &line.what(), Subject::List, scrub));
                }
                Err(why) => return Err(bad_answer(&why, body)),
            };
            if !env.success {
                let m = scrub.scrub(&env.message);
                return Err(Failure::Refused(refused(classify(&env.message, Subject::List), m.clone(), m)));
            }
            let entries = match env.data {
                serde_json::Value::Array(entries) => entries,
                serde_json::Value::Null => Vec::new(),
                _ => return Err(bad_answer("active_lists data is not a list", body)),
            };
            Ok(entries
                .iter()
                .enumerate()
                .filter_map(|(i, entry)| {
                    let parsed = entry.as_str().and_then(wire::parse_active_list);
                    if parsed.is_none() {
                        tracing::warn!(entry = i, "skipping an active_lists entry that is not CAMPAIGN-LISTID-NAME");
                    }
                    parsed
                })
                .map(|(campaign_id, list_id, name)| DialList { list_id, name, campaign_id, active: true })
                .collect())
        })
        .await
    }

    async fn add_leads(&self, list_id: &str, leads: &[Lead]) -> Result<Vec<LeadOutcome>, DialerError> {
        let wire: Vec<WireLead<'_>> = leads.iter().map(|l| wire_lead(l, list_id)).collect();
        let json = serde_json::to_string(&wire).expect("strings always serialise");
        let scrub = self.scrubber([]);
        let check = || format!("list {list_id} at the dialer shows whether these leads were added");
        let parse = |body: &str| {
            let json = match wire::parse(body) {
                Ok(Answer::Json(json)) => json,
                Ok(Answer::Text(lines)) => {
                    let line = Answer::decisive(&lines).ok_or_else(|| bad_answer("no answer line", body))?;
                    return Err(refused_line(&line.raw, &line.what(), Subject::Leads, &scrub));
                }
                Err(why) => return Err(bad_answer(&why, body)),
            };
            match wire::lead_outcomes(json, leads.len()) {
                Ok(LeadsAnswer::Outcomes(outcomes)) => Ok(outcomes
                    .into_iter()
                    .map(|o| match o {
                        LeadOutcome::Rejected { error } => LeadOutcome::Rejected { error: scrub.scrub(&error) },
                        other => other,
                    })
                    .collect()),
                Ok(LeadsAnswer::Refused(message)) => {
                    let m = scrub.scrub(&message);
                    let code = m.strip_prefix("add_multi_lead ").unwrap_or(&m).to_owned();
                    Err(Failure::Refused(refused(classify(&message, Subject::Leads), code, m)))
                }
                Err(why) => Err(bad_answer(&why, body)),
            }
        };
        self.mutate(wire::ADD_MULTI_LEAD, &[("multi_leads", json.as_str())], check, parse).await
    }

    fn export_shape(&self) -> ExportShape {
        ExportShape {
            concurrency: EXPORT_CONCURRENCY,
            max_leads_per_call: wire::MAX_LEADS_PER_CALL,
            max_bytes_per_call: wire::MAX_BODY_BYTES - wire::PARAMS_ALLOWANCE,
            // Elision's add_multi_lead documents no phone_code (the seed's lead has none).
            takes_phone_code: false,
        }
    }

    fn lead_wire_size(&self, lead: &Lead) -> Option<usize> {
        // Counted with the longest list id, and the `,` that joins it to the next lead.
        let json = serde_json::to_string(&wire_lead(lead, "00000000000000")).expect("strings always serialise");
        let size = wire::form_encoded_len(&json) + wire::form_encoded_len(",");
        (size <= self.export_shape().max_bytes_per_call).then_some(size)
    }
}

#[cfg(test)]
mod tests;
