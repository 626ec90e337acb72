//! The Elision client: Elision's functions and answers on the family's transport
//! ([`crate::dialer::vicidial_family::transport`], which says what a call without a usable
//! answer becomes and how the lockout is avoided). No message ever quotes an answer's body.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use secrecy::SecretString;

use super::wire::{self, Answer, Envelope, LeadsAnswer, Prefix, Scrubber, Subject, WireLead, classify, classify_line};
use crate::{
    dialer::provider::{
        Ack, Agent, DialList, DialerError, DialerProvider, DialerStatus, ExportShape, FieldRules, Lead, LeadOutcome,
        Refusal,
    },
    dialer::vicidial_family::{
        params::{agent_params, agent_secrets, as_refs},
        transport::{Failure, FamilyApi, Vendor, bad_answer},
    },
    ops::{retry::Backoff, vendor::VendorHttp},
};

pub use crate::dialer::vicidial_family::transport::{DEFAULT_TIMEOUT, READ_RETRY};
/// Batches in flight at once: one dialer box serves the call centre too, so patchbay stays polite.
pub const EXPORT_CONCURRENCY: usize = 4;
/// The largest answer read (an add_multi_lead answer for 100 leads is about 10 KB; active_lists
/// of 50,000 lists about 2 MB). A bigger one is not read, and counts as an unreadable answer.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The registry name of this provider (`provider: elision`), in metrics and errors.
pub const PROVIDER: &str = "elision";
/// A client of one tenant's Elision dialer.
#[derive(Debug, Clone)]
pub struct ElisionClient {
    api: FamilyApi,
}

impl ElisionClient {
    pub fn new(
        http: VendorHttp,
        endpoint: reqwest::Url,
        source: impl Into<String>,
        user: SecretString,
        pass: SecretString,
    ) -> Self {
        let vendor = Vendor { provider: PROVIDER, domain: wire::DOMAIN, max_answer_bytes: MAX_ANSWER_BYTES };
        Self { api: FamilyApi::new(vendor, http, endpoint, source, user, pass) }
    }

    /// How long to wait for one answer (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.api = self.api.with_timeout(timeout);
        self
    }

    /// How reads are retried (default [`READ_RETRY`]).
    pub fn with_read_retry(mut self, retry: Backoff) -> Self {
        self.api = self.api.with_read_retry(retry);
        self
    }

    /// Counts the configuration's full re-reads (see `FamilyApi::with_full_reloads`).
    pub fn with_full_reloads(mut self, counter: Arc<AtomicU64>) -> Self {
        self.api = self.api.with_full_reloads(counter);
        self
    }

    fn scrubber<'a>(&'a self, extra: impl IntoIterator<Item = &'a str>) -> Scrubber {
        self.api.scrubber(extra)
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
        self.api.mutate(wire::ADD_USER, &as_refs(&params), check, |body| ack(body, Subject::Agent, &scrub)).await
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
        self.api.mutate(wire::UPDATE_USER, &as_refs(&params), check, |body| ack(body, Subject::Agent, &scrub)).await
    }

    async fn delete_agent(&self, _user: &str) -> Result<Ack, DialerError> {
        // Stock VICIdial deletes with update_user's `delete_user=Y`; Elision's document lists no
        // such field, and sending an undocumented one could do anything.
        Err(DialerError::Unsupported {
            what: "deleting an agent",
            why: "Elision's document names no way to delete an agent (its update_user lists no delete field)",
        })
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
        self.api.mutate(wire::ADD_LIST, &params, check, |body| ack(body, Subject::List, &scrub)).await
    }

    async fn active_lists(&self, _known: &[String]) -> Result<Vec<DialList>, DialerError> {
        self.api
            .read(wire::ACTIVE_LISTS, &[], |body, scrub| {
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
                            tracing::warn!(
                                entry = i,
                                "skipping an active_lists entry that is not CAMPAIGN-LISTID-NAME"
                            );
                        }
                        parsed
                    })
                    .map(|(campaign_id, list_id, name)| DialList { list_id, name, campaign_id, active: true })
                    .collect())
            })
            .await
    }

    async fn add_leads(&self, list_id: &str, leads: &[Lead], _resend: bool) -> Result<Vec<LeadOutcome>, DialerError> {
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
        self.api.mutate(wire::ADD_MULTI_LEAD, &[("multi_leads", json.as_str())], check, parse).await
    }

    fn export_shape(&self) -> ExportShape {
        ExportShape {
            concurrency: EXPORT_CONCURRENCY,
            max_leads_per_call: wire::MAX_LEADS_PER_CALL,
            max_bytes_per_call: wire::MAX_BODY_BYTES - wire::PARAMS_ALLOWANCE,
            // Elision's add_multi_lead documents no phone_code (the seed's lead has none).
            takes_phone_code: false,
            // add_multi_lead makes no duplicate check: a resend could add a lead twice.
            resend_safe: false,
        }
    }

    fn field_rules(&self) -> &'static FieldRules {
        &wire::RULES
    }

    async fn status(&self) -> DialerStatus {
        DialerStatus {
            login: self.api.login_state(),
            message: "Elision's document has no function that answers without a login, so reachability is not \
                      probed; the login state is that of the last call"
                .into(),
            ..DialerStatus::default()
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
