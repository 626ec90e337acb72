//! The stock VICIdial client: the non-agent API's functions on the family's transport
//! ([`crate::dialer::vicidial_family::transport`]: form POSTs, what a call without a usable
//! answer becomes, the stop after a refused login).
//!
//! - Leads go one add_lead each, with `duplicate_check=DUPLIST` and `list_exists_check=Y`: a
//!   lead whose answer was lost can be sent again, because the dialer then either adds it or
//!   answers `DUPLICATE PHONE NUMBER IN LIST` naming the copy the first attempt made. So an
//!   export is exactly-once per (list, phone) ([`ExportShape::resend_safe`]).
//! - Lists cannot be listed: [`DialerProvider::active_lists`] reads the ones patchbay knows (those
//!   it created or exported to, plus `known_list_ids` of the tenant file) with list_info.
//! - A list is created only in a campaign that campaigns_list shows.

use std::{
    collections::BTreeSet,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use secrecy::SecretString;

use super::wire::{self, LeadAnswer, Text};
use crate::{
    dialer::{
        provider::{
            Ack, Agent, DialList, DialerError, DialerProvider, DialerStatus, ExportShape, FieldRules, Lead,
            LeadOutcome, Refusal,
        },
        vicidial_family::{
            answer::{Prefix, Subject, classify_line},
            params::{agent_params, agent_secrets, as_refs},
            scrub::Scrubber,
            transport::{Failure, FamilyApi, MAX_IN_FLIGHT, Vendor, bad_answer},
        },
    },
    ops::{retry::Backoff, vendor::VendorHttp},
};

/// The registry name of this provider (`provider: vicidial`), in metrics and errors.
pub const PROVIDER: &str = "vicidial";
/// add_lead calls in flight at once for one export, unless the tenant file says otherwise.
pub const DEFAULT_EXPORT_CONCURRENCY: usize = 8;
/// The most an export may have in flight: the client's own cap, below the 10-failure lockout.
pub const MAX_EXPORT_CONCURRENCY: usize = MAX_IN_FLIGHT;
/// list_info calls in flight at once while answering ListActiveLists.
const LIST_INFO_CONCURRENCY: usize = 4;
/// A delete whose answer was lost is sent this many times in all (a resend that finds no such
/// user means the first attempt deleted it).
const DELETE_ATTEMPTS: u32 = 3;

/// A client of one tenant's stock VICIdial.
#[derive(Debug, Clone)]
pub struct VicidialClient {
    api: FamilyApi,
    /// `known_list_ids` of the tenant file.
    configured_lists: Vec<String>,
    export_concurrency: usize,
}

impl VicidialClient {
    pub fn new(
        http: VendorHttp,
        endpoint: reqwest::Url,
        source: impl Into<String>,
        user: SecretString,
        pass: SecretString,
    ) -> Self {
        let vendor = Vendor { provider: PROVIDER, domain: wire::DOMAIN, max_answer_bytes: wire::MAX_ANSWER_BYTES };
        Self {
            api: FamilyApi::new(vendor, http, endpoint, source, user, pass),
            configured_lists: Vec::new(),
            export_concurrency: DEFAULT_EXPORT_CONCURRENCY,
        }
    }

    /// List ids ListActiveLists reads besides those patchbay created or exported to.
    pub fn with_known_lists(mut self, ids: Vec<String>) -> Self {
        self.configured_lists = ids;
        self
    }

    /// add_lead calls in flight per export (1 to [`MAX_EXPORT_CONCURRENCY`]).
    pub fn with_export_concurrency(mut self, n: usize) -> Self {
        self.export_concurrency = n.clamp(1, MAX_EXPORT_CONCURRENCY);
        self
    }

    pub fn with_full_reloads(mut self, counter: Arc<AtomicU64>) -> Self {
        self.api = self.api.with_full_reloads(counter);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.api = self.api.with_timeout(timeout);
        self
    }

    pub fn with_read_retry(mut self, retry: Backoff) -> Self {
        self.api = self.api.with_read_retry(retry);
        self
    }

    /// A mutation's answer: its lines, or the refusal of its first ERROR line.
    fn ack(&self, body: &str, subject: Subject, scrub: &Scrubber) -> Result<Ack, Failure> {
        let lines = match wire::parse(body) {
            Ok(Text::Lines(lines)) => lines,
            Ok(Text::Rows(_)) => return Err(bad_answer("data rows where a SUCCESS or ERROR line belongs", body)),
            Err(why) => return Err(bad_answer(&why, body)),
        };
        if let Some(error) = lines.iter().find(|l| l.prefix == Prefix::Error) {
            return Err(self.api.refused_line(error, subject, scrub));
        }
        let text = lines.iter().map(|l| l.raw.as_str()).collect::<Vec<_>>().join("\n");
        Ok(Ack { vendor_message: scrub.scrub(&text) })
    }

    /// list_info of one list: `None` when the dialer has no such list (or the API user may not
    /// see it, which to this tenant is the same).
    async fn list_info(&self, list_id: &str) -> Result<Option<DialList>, DialerError> {
        self.api
            .read(wire::LIST_INFO, &[("list_id", list_id)], |body, scrub| match wire::parse(body) {
                Ok(Text::Rows(rows)) => rows
                    .first()
                    .and_then(|r| wire::list_row(r))
                    .map(Some)
                    .ok_or_else(|| bad_answer("not a list_info row", body)),
                Ok(Text::Lines(lines)) => {
                    let line = &lines[0];
                    let reason = line.what().to_ascii_uppercase();
                    if reason.contains("LIST DOES NOT EXIST") || reason.contains("NOT AN ALLOWED LIST ID") {
                        return Ok(None);
                    }
                    Err(self.api.refused_line(line, Subject::List, scrub))
                }
                Err(why) => Err(bad_answer(&why, body)),
            })
            .await
    }

    /// Whether campaigns_list shows `campaign_id` to the API user.
    async fn campaign_exists(&self, campaign_id: &str) -> Result<bool, DialerError> {
        self.api
            .read(wire::CAMPAIGNS_LIST, &[("campaign_id", campaign_id)], |body, scrub| match wire::parse(body) {
                // Campaign ids compare case-insensitively (MySQL's default collation).
                Ok(Text::Rows(rows)) => {
                    Ok(rows.iter().any(|r| r.first().is_some_and(|id| id.eq_ignore_ascii_case(campaign_id))))
                }
                Ok(Text::Lines(lines)) => {
                    let line = &lines[0];
                    if line.what().to_ascii_uppercase().contains("NO VIEWABLE CAMPAIGNS") {
                        return Ok(false);
                    }
                    Err(self.api.refused_line(line, Subject::List, scrub))
                }
                Err(why) => Err(bad_answer(&why, body)),
            })
            .await
    }

    /// One add_lead: its outcome, or an error that concerns the whole export (the login, the API
    /// user's rights) or leaves the lead's fate unclear.
    async fn add_lead(&self, list_id: &str, lead: &Lead, resend: bool) -> Result<LeadOutcome, DialerError> {
        let mut params = vec![
            ("phone_number", lead.phone_number.as_str()),
            ("list_id", list_id),
            ("duplicate_check", wire::DUPLICATE_CHECK),
            // A list deleted meanwhile must refuse the lead, not take it into list 999.
            ("list_exists_check", "Y"),
        ];
        for (key, value) in [
            ("phone_code", &lead.phone_code),
            ("first_name", &lead.first_name),
            ("last_name", &lead.last_name),
            ("email", &lead.email),
            ("city", &lead.city),
            ("postal_code", &lead.postal_code),
            ("vendor_lead_code", &lead.vendor_lead_code),
        ] {
            if !value.is_empty() {
                params.push((key, value.as_str()));
            }
        }
        let scrub = self.api.scrubber([]);
        let check = || {
            format!(
                "send the export again with the same request_id: lead {} is resent under DUPLIST",
                lead.phone_number
            )
        };
        let result = match self.api.post(wire::ADD_LEAD, &params).await {
            Ok(body) => self.lead_outcome(&body, resend, &scrub),
            Err(e) => Err(e),
        };
        result.map_err(|f| self.api.failed(f, check))
    }

    fn lead_outcome(&self, body: &str, resend: bool, scrub: &Scrubber) -> Result<LeadOutcome, Failure> {
        let lines = match wire::parse(body) {
            Ok(Text::Lines(lines)) => lines,
            Ok(Text::Rows(_)) => return Err(bad_answer("data rows where a SUCCESS or ERROR line belongs", body)),
            Err(why) => return Err(bad_answer(&why, body)),
        };
        match wire::lead_answer(&lines) {
            LeadAnswer::Added { lead_id } => Ok(LeadOutcome::Accepted { lead_id }),
            // After a lost answer, the copy in the list is the one the lost attempt added.
            LeadAnswer::InList { lead_id } if resend => Ok(LeadOutcome::Accepted { lead_id }),
            LeadAnswer::InList { lead_id } => Ok(LeadOutcome::Duplicate { lead_id }),
            LeadAnswer::Error(line) => {
                let kind = classify_line(&line.raw, Subject::Leads);
                let refusal = self.api.refused(kind, scrub.scrub(&line.what()), scrub.scrub(&line.raw));
                if refusal.is_tenant_problem() || line.what().to_ascii_uppercase().contains("NOT AN ALLOWED LIST") {
                    // Every further lead would meet it: the export stops.
                    let refusal = match refusal {
                        DialerError::Refused { kind: Refusal::Other, domain, vendor_code, message } => {
                            DialerError::Refused { kind: Refusal::PermissionDenied, domain, vendor_code, message }
                        }
                        other => other,
                    };
                    return Err(Failure::Refused(refusal));
                }
                Ok(LeadOutcome::Rejected { error: scrub.scrub(&line.raw) })
            }
            LeadAnswer::Unreadable(why) => Err(bad_answer(why, body)),
        }
    }
}

#[tonic::async_trait]
impl DialerProvider for VicidialClient {
    async fn create_agent(&self, agent: &Agent) -> Result<Ack, DialerError> {
        let params = agent_params(agent);
        let scrub = self.api.scrubber(agent_secrets(agent));
        let check = || {
            format!("send the CreateAgent again: AGENT_ALREADY_EXISTS then means that agent {} was added", agent.user)
        };
        self.api.mutate(wire::ADD_USER, &as_refs(&params), check, |body| self.ack(body, Subject::Agent, &scrub)).await
    }

    async fn update_agent(&self, agent: &Agent) -> Result<Ack, DialerError> {
        let params = agent_params(agent);
        let scrub = self.api.scrubber(agent_secrets(agent));
        let check = || {
            format!(
                "an update only sets values, so the same UpdateAgent of agent {} may be sent again once the dialer \
                 answers",
                agent.user
            )
        };
        self.api
            .mutate(wire::UPDATE_USER, &as_refs(&params), check, |body| self.ack(body, Subject::Agent, &scrub))
            .await
    }

    async fn delete_agent(&self, user: &str) -> Result<Ack, DialerError> {
        let params = [("agent_user", user), ("delete_user", "Y")];
        let scrub = self.api.scrubber([]);
        let check = || format!("user_details of agent {user} (USER NOT FOUND: it was deleted)");
        let mut made = 0;
        loop {
            made += 1;
            match self
                .api
                .mutate(wire::UPDATE_USER, &params, check, |body| self.ack(body, Subject::Agent, &scrub))
                .await
            {
                // A resend after a lost answer: the first attempt deleted the agent.
                Err(DialerError::Refused { kind: Refusal::AgentNotFound, .. }) if made > 1 => {
                    return Ok(Ack {
                        vendor_message: format!("agent {user} is gone (the answer to the first delete was lost)"),
                    });
                }
                // Deleting again is harmless: the dialer either deletes or finds no such user.
                Err(DialerError::OutcomeUnknown { .. }) if made < DELETE_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(made))).await;
                }
                other => return other,
            }
        }
    }

    async fn create_list(&self, list: &DialList) -> Result<Ack, DialerError> {
        if !self.campaign_exists(&list.campaign_id).await? {
            return Err(self.api.refused(
                Refusal::CampaignNotFound,
                "CAMPAIGN DOES NOT EXIST",
                format!(
                    "campaigns_list shows no campaign {} to the API user (it does not exist, or is not among its \
                     user group's allowed campaigns); no list was created",
                    list.campaign_id
                ),
            ));
        }
        let params = [
            ("list_id", list.list_id.as_str()),
            ("list_name", list.name.as_str()),
            ("campaign_id", list.campaign_id.as_str()),
            ("active", if list.active { "Y" } else { "N" }),
        ];
        let scrub = self.api.scrubber([]);
        let check = || format!("a CreateList of list {} answers LIST_ALREADY_EXISTS if it was created", list.list_id);
        self.api.mutate(wire::ADD_LIST, &params, check, |body| self.ack(body, Subject::List, &scrub)).await
    }

    async fn active_lists(&self, known: &[String]) -> Result<Vec<DialList>, DialerError> {
        let ids: BTreeSet<String> = known.iter().chain(&self.configured_lists).cloned().collect();
        let found: Vec<Option<DialList>> = futures::stream::iter(ids)
            .map(|id| async move { self.list_info(&id).await })
            .buffered(LIST_INFO_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().filter(|l| l.active).collect())
    }

    async fn is_list_active(&self, list_id: &str) -> Result<bool, DialerError> {
        Ok(self.list_info(list_id).await?.is_some_and(|l| l.active))
    }

    async fn add_leads(&self, list_id: &str, leads: &[Lead], resend: bool) -> Result<Vec<LeadOutcome>, DialerError> {
        // One lead per call (export_shape); a longer slice is sent lead by lead.
        let mut outcomes = Vec::with_capacity(leads.len());
        for lead in leads {
            outcomes.push(self.add_lead(list_id, lead, resend).await?);
        }
        Ok(outcomes)
    }

    fn export_shape(&self) -> ExportShape {
        ExportShape {
            concurrency: self.export_concurrency,
            max_leads_per_call: 1,
            max_bytes_per_call: wire::MAX_BODY_BYTES,
            takes_phone_code: true,
            resend_safe: true,
        }
    }

    fn lead_wire_size(&self, lead: &Lead) -> Option<usize> {
        // Form-encoded, every byte at worst as %XX, plus the names and fixed parameters.
        let values = [
            &lead.phone_number,
            &lead.phone_code,
            &lead.first_name,
            &lead.last_name,
            &lead.email,
            &lead.city,
            &lead.postal_code,
            &lead.vendor_lead_code,
        ];
        let size = values.iter().map(|v| v.len() * 3).sum::<usize>() + 512;
        (size <= wire::MAX_BODY_BYTES).then_some(size)
    }

    fn field_rules(&self) -> &'static FieldRules {
        &wire::RULES
    }

    async fn status(&self) -> DialerStatus {
        let login = self.api.login_state();
        match self.api.post_anonymous(wire::VERSION).await {
            Ok(body) => match wire::version(&body) {
                Some((version, build)) => DialerStatus {
                    reachable: Some(true),
                    message: format!("version answered {version} (build {build}); it needs no login"),
                    version,
                    build,
                    login,
                },
                None => DialerStatus {
                    reachable: Some(false),
                    login,
                    message: "the dialer answered `version` with something else: check triggers.dialer.api_url".into(),
                    ..DialerStatus::default()
                },
            },
            Err(failure) => DialerStatus {
                reachable: Some(false),
                login,
                message: match failure {
                    Failure::Refused(e) => e.to_string(),
                    Failure::NoAnswer { message, .. } => message,
                },
                ..DialerStatus::default()
            },
        }
    }
}

#[cfg(test)]
mod tests;
