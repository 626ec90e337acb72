//! The Elision client: every call is one POST of a form body to the one API script, carrying
//! `function`, `source`, `user` and `pass`. Form bodies rather than the documents' query strings,
//! so that lead batches are not limited by URL length and passwords stay out of access logs.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::wire::{self, Answer, Envelope, LeadsAnswer, Prefix, Scrubber, Subject, WireLead, classify};
use crate::{
    dialer::provider::{
        Ack, Agent, Delivery, DialList, DialerError, DialerProvider, ExportShape, Lead, LeadOutcome, Refusal,
    },
    ops::retry::Backoff,
};

/// Default time to wait for one answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads (active_lists) are retried on 5xx, timeouts and unreadable answers.
pub const READ_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2), 3);
/// Batches in flight at once: one dialer box serves the call centre too, so patchbay stays polite.
pub const EXPORT_CONCURRENCY: usize = 4;

/// A client of one tenant's Elision dialer.
#[derive(Debug, Clone)]
pub struct ElisionClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    source: String,
    user: SecretString,
    pass: SecretString,
    timeout: Duration,
    read_retry: Backoff,
}

impl ElisionClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: reqwest::Url,
        source: impl Into<String>,
        user: SecretString,
        pass: SecretString,
    ) -> Self {
        Self { http, endpoint, source: source.into(), user, pass, timeout: DEFAULT_TIMEOUT, read_retry: READ_RETRY }
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
    fn scrubber<'a>(&'a self, extra: impl IntoIterator<Item = &'a str>) -> Scrubber<'a> {
        Scrubber::new(std::iter::once(self.pass.expose_secret()).chain(extra))
    }

    /// One call: the answer's body, or why there is none usable.
    async fn post(&self, function: &str, params: &[(&str, &str)]) -> Result<String, DialerError> {
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 4);
        form.extend([
            ("function", function),
            ("source", self.source.as_str()),
            ("user", self.user.expose_secret()),
            ("pass", self.pass.expose_secret()),
        ]);
        form.extend_from_slice(params);
        let sent = self.http.post(self.endpoint.clone()).timeout(self.timeout).form(&form).send().await;
        let resp = sent.map_err(|e| transport_error(function, &e, self.timeout))?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            // A dialer answering 5xx has not run the function (PHP failed before or the proxy
            // in front refused it): the call may be sent again.
            return Err(unavailable(
                "VENDOR_UNAVAILABLE",
                format!("{function}: the dialer answered HTTP {status}"),
                Delivery::NotTaken,
            ));
        }
        if !status.is_success() {
            return Err(refused(
                Refusal::Other,
                format!("HTTP {}", status.as_u16()),
                format!(
                    "{function}: the dialer answered HTTP {status} (check the tenant's dialer api_url: {})",
                    self.endpoint
                ),
            ));
        }
        let bytes = resp.bytes().await.map_err(|e| transport_error(function, &e, self.timeout))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A read, retried with backoff while the dialer is unavailable.
    async fn read<T>(
        &self,
        function: &str,
        params: &[(&str, &str)],
        parse: impl Fn(&str, &Scrubber<'_>) -> Result<T, DialerError>,
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
                Err(e @ DialerError::Unavailable { .. }) if self.read_retry.allows(made) => {
                    tracing::debug!(function, attempt = made, error = %e, "dialer read failed; retrying");
                    tokio::time::sleep(self.read_retry.delay(made)).await;
                }
                other => return other,
            }
        }
    }

    /// add_user / update_user / add_list: a mutation, sent once.
    async fn mutate(
        &self,
        function: &str,
        params: &[(&str, &str)],
        subject: Subject,
        scrub: Scrubber<'_>,
    ) -> Result<Ack, DialerError> {
        let body = self.post(function, params).await?;
        ack(&body, subject, &scrub)
    }
}

/// A mutation's answer, in either style.
fn ack(body: &str, subject: Subject, scrub: &Scrubber<'_>) -> Result<Ack, DialerError> {
    match wire::parse(body) {
        Ok(Answer::Text(lines)) => {
            let decisive = Answer::decisive(&lines).ok_or_else(|| bad_response("no answer line", body, scrub))?;
            if decisive.prefix == Prefix::Error {
                return Err(refused(
                    classify(&decisive.raw, subject),
                    scrub.scrub(&decisive.what()),
                    scrub.scrub(&decisive.raw),
                ));
            }
            let text = lines.iter().map(|l| l.raw.as_str()).collect::<Vec<_>>().join("\n");
            Ok(Ack { vendor_message: scrub.scrub(&text) })
        }
        Ok(Answer::Json(json)) => {
            let env = envelope(json, body, scrub)?;
            if env.success {
                Ok(Ack { vendor_message: scrub.scrub(&env.message) })
            } else {
                Err(refused(classify(&env.message, subject), scrub.scrub(&env.message), scrub.scrub(&env.message)))
            }
        }
        Err(why) => Err(bad_response(&why, body, scrub)),
    }
}

fn envelope(json: serde_json::Value, body: &str, scrub: &Scrubber<'_>) -> Result<Envelope, DialerError> {
    serde_json::from_value(json).map_err(|e| bad_response(&format!("not the JSON envelope: {e}"), body, scrub))
}

fn refused(kind: Refusal, vendor_code: impl Into<String>, message: String) -> DialerError {
    DialerError::Refused { kind, domain: wire::DOMAIN, vendor_code: vendor_code.into(), message }
}

fn unavailable(reason: &'static str, message: String, delivery: Delivery) -> DialerError {
    DialerError::Unavailable { reason, domain: wire::DOMAIN, message, delivery }
}

/// An answer that is not one: the call may or may not have been carried out.
fn bad_response(why: &str, body: &str, scrub: &Scrubber<'_>) -> DialerError {
    let start: String = body.chars().take(80).filter(|c| !c.is_control()).collect();
    unavailable(
        "VENDOR_BAD_RESPONSE",
        format!("the dialer's answer could not be read ({why}); it begins {:?}", scrub.scrub(&start)),
        Delivery::Unknown,
    )
}

fn transport_error(function: &str, e: &reqwest::Error, timeout: Duration) -> DialerError {
    // reqwest's errors name the URL, never the form body, so they hold no password.
    if e.is_connect() {
        unavailable("VENDOR_UNAVAILABLE", format!("{function}: cannot connect to the dialer"), Delivery::NotTaken)
    } else if e.is_timeout() {
        unavailable(
            "VENDOR_TIMEOUT",
            format!("{function}: no answer from the dialer within {} s", timeout.as_secs_f32()),
            Delivery::Unknown,
        )
    } else {
        unavailable("VENDOR_UNAVAILABLE", format!("{function}: the connection to the dialer failed"), Delivery::Unknown)
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
        self.mutate(wire::ADD_USER, &as_refs(&params), Subject::Agent, self.scrubber(agent_secrets(agent))).await
    }

    async fn update_agent(&self, agent: &Agent) -> Result<Ack, DialerError> {
        let params = agent_params(agent);
        self.mutate(wire::UPDATE_USER, &as_refs(&params), Subject::Agent, self.scrubber(agent_secrets(agent))).await
    }

    async fn create_list(&self, list: &DialList) -> Result<Ack, DialerError> {
        let params = [
            ("list_id", list.list_id.as_str()),
            ("list_name", list.name.as_str()),
            ("campaign_id", list.campaign_id.as_str()),
            ("active", if list.active { "Y" } else { "N" }),
        ];
        self.mutate(wire::ADD_LIST, &params, Subject::List, self.scrubber([])).await
    }

    async fn active_lists(&self) -> Result<Vec<DialList>, DialerError> {
        self.read(wire::ACTIVE_LISTS, &[], |body, scrub| {
            let env = match wire::parse(body) {
                Ok(Answer::Json(json)) => envelope(json, body, scrub)?,
                Ok(Answer::Text(lines)) => {
                    let line = Answer::decisive(&lines).ok_or_else(|| bad_response("no answer line", body, scrub))?;
                    return Err(refused(classify(&line.raw, Subject::List), scrub.scrub(&line.what()), scrub.scrub(&line.raw)));
                }
                Err(why) => return Err(bad_response(&why, body, scrub)),
            };
            if !env.success {
                let m = scrub.scrub(&env.message);
                return Err(refused(classify(&env.message, Subject::List), m.clone(), m));
            }
            let entries = match env.data {
                serde_json::Value::Array(entries) => entries,
                serde_json::Value::Null => Vec::new(),
                _ => return Err(bad_response("active_lists data is not a list", body, scrub)),
            };
            Ok(entries
                .iter()
                .filter_map(|entry| {
                    let parsed = entry.as_str().and_then(wire::parse_active_list);
                    if parsed.is_none() {
                        tracing::warn!(entry = %entry, "skipping an active_lists entry that is not CAMPAIGN-LISTID-NAME");
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
        let body = self.post(wire::ADD_MULTI_LEAD, &[("multi_leads", json.as_str())]).await?;
        let scrub = self.scrubber([]);
        let json = match wire::parse(&body) {
            Ok(Answer::Json(json)) => json,
            Ok(Answer::Text(lines)) => {
                let line = Answer::decisive(&lines).ok_or_else(|| bad_response("no answer line", &body, &scrub))?;
                return Err(refused(
                    classify(&line.raw, Subject::Leads),
                    scrub.scrub(&line.what()),
                    scrub.scrub(&line.raw),
                ));
            }
            Err(why) => return Err(bad_response(&why, &body, &scrub)),
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
                Err(refused(classify(&message, Subject::Leads), code, m))
            }
            Err(why) => Err(bad_response(&why, &body, &scrub)),
        }
    }

    fn export_shape(&self) -> ExportShape {
        ExportShape {
            concurrency: EXPORT_CONCURRENCY,
            max_leads_per_call: wire::MAX_LEADS_PER_CALL,
            max_bytes_per_call: wire::MAX_BODY_BYTES - wire::PARAMS_ALLOWANCE,
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
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        dialer::elision::sim::{ElisionSim, Permissions},
        sim::{Fault, FaultRule},
    };

    fn client(sim: &ElisionSim, pass: &str) -> ElisionClient {
        ElisionClient::new(
            reqwest::Client::new(),
            sim.url().parse().unwrap(),
            "test",
            "api".to_owned().into(),
            pass.to_owned().into(),
        )
        .with_read_retry(Backoff::new(Duration::from_millis(5), Duration::from_millis(20), 3))
    }

    fn sim() -> Arc<ElisionSim> {
        Arc::new(ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap())
    }

    fn agent(user: &str) -> Agent {
        Agent {
            user: user.into(),
            password: Some("9999".to_owned().into()),
            level: Some(1),
            full_name: Some("Testing Person".into()),
            group: Some("AGENTS".into()),
            ..Agent::default()
        }
    }

    #[tokio::test]
    async fn create_agent_sends_a_form_body_and_scrubs_the_echoed_password() {
        let sim = sim();
        let ack = client(&sim, "1234").create_agent(&agent("1000")).await.unwrap();
        assert_eq!(ack.vendor_message, "SUCCESS: add_user USER HAS BEEN ADDED - api|1000|***|1|Testing Person|AGENTS");
        assert_eq!(sim.user("1000").unwrap().full_name, "Testing Person");
        assert_eq!(sim.calls().get("add_user"), 1);
    }

    #[tokio::test]
    async fn a_refused_login_is_auth_failed_without_the_password() {
        let sim = sim();
        let err = client(&sim, "wrong-pass").create_agent(&agent("1000")).await.unwrap_err();
        let DialerError::Refused { kind, message, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*kind, Refusal::AuthFailed);
        assert!(!message.contains("wrong-pass"), "{message}");
        assert!(message.contains("Login incorrect"), "{message}");
    }

    #[tokio::test]
    async fn ten_refused_logins_lock_the_api_user_even_for_the_right_password() {
        let sim = sim();
        let bad = client(&sim, "nope");
        for _ in 0..10 {
            bad.active_lists().await.unwrap_err();
        }
        assert!(sim.is_locked("api"));
        let err = client(&sim, "1234").active_lists().await.unwrap_err();
        let DialerError::Refused { kind, message, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*kind, Refusal::AuthFailed);
        assert!(message.contains("Too many login attempts"), "{message}");
        sim.unlock("api");
        assert!(client(&sim, "1234").active_lists().await.is_ok());
    }

    #[tokio::test]
    async fn add_list_without_permission_never_echoes_the_api_password() {
        let sim = sim();
        sim.set_permissions("api", Permissions { modify_lists: false, ..Permissions::ALL });
        let list = DialList {
            list_id: "5001".into(),
            name: "Spring promo".into(),
            campaign_id: "TESTCAMP".into(),
            active: true,
        };
        let err = client(&sim, "1234").create_list(&list).await.unwrap_err();
        let DialerError::Refused { kind, message, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*kind, Refusal::PermissionDenied);
        assert!(!message.contains("1234"), "{message}");
    }

    #[tokio::test]
    async fn reads_are_retried_through_5xx_and_garbage() {
        let sim = sim();
        sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("active_lists").times(1));
        sim.faults().plan(FaultRule::new(Fault::Garbage).matching("active_lists").times(1));
        let lists = client(&sim, "1234").active_lists().await.unwrap();
        assert!(lists.iter().any(|l| l.list_id == "20042018" && l.name == "20042018-hardik"));
        assert_eq!(sim.calls().get("active_lists"), 3);
    }

    #[tokio::test]
    async fn reads_give_up_after_their_attempts_as_unavailable() {
        let sim = sim();
        sim.faults().plan(FaultRule::new(Fault::Status(503)).matching("active_lists"));
        let err = client(&sim, "1234").active_lists().await.unwrap_err();
        assert!(matches!(err, DialerError::Unavailable { reason: "VENDOR_UNAVAILABLE", .. }), "{err:?}");
        assert_eq!(sim.calls().get("active_lists"), 3);
    }

    #[tokio::test]
    async fn a_timeout_is_unavailable_with_an_unknown_delivery_and_mutations_are_not_retried() {
        let sim = sim();
        sim.faults().set_hang_for(Duration::from_secs(5));
        sim.faults().plan(FaultRule::new(Fault::Hang).matching("add_user").times(1));
        let c = client(&sim, "1234").with_timeout(Duration::from_millis(200));
        let err = c.create_agent(&agent("1000")).await.unwrap_err();
        assert!(
            matches!(err, DialerError::Unavailable { reason: "VENDOR_TIMEOUT", delivery: Delivery::Unknown, .. }),
            "{err:?}"
        );
        assert!(!err.safe_to_resend());
        assert_eq!(sim.calls().get("add_user"), 1);
    }

    #[tokio::test]
    async fn a_garbage_answer_to_a_mutation_is_a_bad_response() {
        let sim = sim();
        sim.faults().plan(FaultRule::new(Fault::Garbage).matching("add_multi_lead").times(1));
        let lead = Lead { phone_number: "5550100".into(), ..Lead::default() };
        let err = client(&sim, "1234").add_leads("20042018", &[lead]).await.unwrap_err();
        assert!(matches!(err, DialerError::Unavailable { reason: "VENDOR_BAD_RESPONSE", .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_5xx_answer_to_a_batch_is_safe_to_resend() {
        let sim = sim();
        sim.faults().plan(FaultRule::new(Fault::Status(500)).matching("add_multi_lead").times(1));
        let lead = Lead { phone_number: "5550100".into(), ..Lead::default() };
        let err = client(&sim, "1234").add_leads("20042018", std::slice::from_ref(&lead)).await.unwrap_err();
        assert!(err.safe_to_resend());
        assert_eq!(sim.lead_count("20042018"), 0);
    }

    #[tokio::test]
    async fn add_leads_gives_one_outcome_per_lead_in_order() {
        let sim = sim();
        let leads: Vec<Lead> = ["5550100", "12", "5550101"]
            .iter()
            .map(|p| Lead { phone_number: (*p).into(), first_name: "Ann".into(), ..Lead::default() })
            .collect();
        let outcomes = client(&sim, "1234").add_leads("20042018", &leads).await.unwrap();
        assert!(matches!(&outcomes[0], LeadOutcome::Accepted { lead_id } if !lead_id.is_empty()));
        assert!(matches!(&outcomes[1], LeadOutcome::Rejected { error } if error.contains("Invalid phone number")));
        assert!(matches!(&outcomes[2], LeadOutcome::Accepted { .. }));
        let stored = sim.leads_in("20042018");
        assert_eq!(stored.iter().map(|l| l.phone_number.as_str()).collect::<Vec<_>>(), ["5550100", "5550101"]);
        assert_eq!(stored[0].first_name, "Ann");
    }

    #[tokio::test]
    async fn the_simulator_refuses_batches_above_the_limit_and_the_shape_stays_below_it() {
        let sim = sim();
        let c = client(&sim, "1234");
        let leads: Vec<Lead> = (0..=wire::MAX_LEADS_PER_CALL)
            .map(|i| Lead { phone_number: format!("555{i:07}"), ..Lead::default() })
            .collect();
        let err = c.add_leads("20042018", &leads).await.unwrap_err();
        assert!(matches!(err, DialerError::Refused { kind: Refusal::Other, .. }), "{err:?}");
        assert!(c.export_shape().max_leads_per_call <= wire::MAX_LEADS_PER_CALL);
        let huge =
            Lead { phone_number: "5550100".into(), first_name: "x".repeat(wire::MAX_BODY_BYTES), ..Lead::default() };
        assert_eq!(c.lead_wire_size(&huge), None);
    }
}
