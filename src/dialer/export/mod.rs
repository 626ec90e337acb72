//! The lead export: a stream of leads in, vendor batches out, one outcome per lead recorded.
//!
//! ```text
//! lead stream ──> reader ──[chunks, bounded]──> senders (N vendor calls in flight) ──[outcomes, bounded]──> writer ──> PostgreSQL
//! ```
//!
//! - Memory stays bounded whatever the export's size: the reader stops pulling from the caller's
//!   stream while the chunk queue is full (gRPC flow control then holds the caller), and every
//!   outcome goes to PostgreSQL as soon as it is known. The answer is read back from there at the end.
//! - Chunks are sized by the vendor's [`ExportShape`] (leads and bytes per call), so no call
//!   exceeds the vendor's limits. A lead that fails patchbay's checks is recorded as rejected
//!   and never sent; it never fails its neighbours.
//! - A batch the dialer provably did not take (no connection, HTTP 503 or 429) is sent again a
//!   bounded number of times, then recorded as `failed` for exactly its leads (a repeat of the
//!   export sends them again). A batch sent without a clear answer (a timeout, any other 5xx such
//!   as a PHP 500 after a partial insert or a proxy's 502/504, an unreadable answer) is never sent
//!   again, in this run or a repeat: its leads are recorded as `unknown`, each saying so.
//! - Idempotent by (tenant, request_id): a repeated export sends only the leads that have no
//!   settled outcome yet (so a finished export sends nothing, and an interrupted one resumes),
//!   and answers every lead from the records. A batch is recorded as `sending` before it goes, so
//!   one whose answer was lost with a dead process is outcome unknown on resume, never resent.
//! - Where the vendor's own duplicate check makes a resend safe ([`ExportShape::resend_safe`],
//!   stock VICIdial's DUPLIST), a lead sent without a clear answer is instead sent again, in
//!   this run (a bounded number of times) and on a repeat: the dialer either adds it now or
//!   names the copy the first attempt made, so the export is exactly-once per (list, phone).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{Stream, StreamExt};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Code;

pub use super::store::Outcome;
mod chunk;
mod target;

use chunk::{Chunk, Chunker, Item};
pub use target::Target;

use super::{
    provider::{DialerError, DialerProvider, Lead, LeadOutcome, Refusal},
    store::{self, Begin, ExportKey, LeadRow},
    validate,
};
use crate::{
    ops::{ApiError, retry::Backoff},
    platform::events::{Event, EventType},
};

/// A batch the dialer provably did not take is sent this many times in all.
pub const BATCH_RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2), 3);
/// Where resending is safe (single-lead calls), a lead is sent this many times in all, whether
/// its answers were lost or the dialer did not take it.
pub const RESEND_RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2), 8);
/// Outcomes written in one statement, at most.
const MAX_ROWS_PER_WRITE: usize = 5_000;
/// How often a running export renews its lease.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// One export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub tenant: String,
    /// Empty: not idempotent (the export still spools its outcomes, under a one-off key).
    pub request_id: String,
    pub target: Target,
    /// This process's instance key, the owner of the export's lease (`store::instance`).
    pub instance: i64,
}

/// One lead's outcome, as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadResult {
    pub index: i32,
    pub phone_number: String,
    pub lead_id: String,
    pub error: String,
    pub outcome: Outcome,
}

/// The export's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub list_id: String,
    pub accepted: i32,
    pub rejected: i32,
    /// Leads whose phone was already in the list.
    pub duplicates: i32,
    /// One per lead, in stream order.
    pub results: Vec<LeadResult>,
    /// A repeat of an export already seen that sent nothing: every outcome came from the record.
    pub replayed: bool,
}

/// The `export.finished` event of an export's summary: its counts by outcome (not the leads).
pub fn finished_event(tenant: &str, request_id: &str, summary: &ExportSummary) -> Event {
    let count = |o: Outcome| summary.results.iter().filter(|r| r.outcome == o).count();
    let (unknown, failed) = (count(Outcome::Unknown), count(Outcome::Failed));
    let data = serde_json::json!({
        "tenant": tenant,
        "request_id": request_id,
        "list_id": summary.list_id,
        "leads": summary.results.len(),
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "duplicates": summary.duplicates,
        "unknown": unknown,
        "failed": failed,
        "replayed": summary.replayed,
    });
    let event = Event::new(EventType::ExportFinished, data);
    if request_id.is_empty() {
        return event;
    }
    // A replay that ends the same way is the same event; one that settled more leads is another.
    let counts = format!("{}/{}/{}/{unknown}/{failed}", summary.accepted, summary.rejected, summary.duplicates);
    event.with_stable_id(&["export", tenant, request_id, &counts])
}

/// Runs an export to the end. `leads` yields the caller's lead batches (or the error that
/// broke its stream). Run it in its own task: if the caller goes away, the batches already
/// read are still sent and recorded, so a repeat of the export finds them.
pub async fn run<S>(
    pool: PgPool,
    provider: Arc<dyn DialerProvider>,
    req: ExportRequest,
    leads: S,
) -> Result<ExportSummary, ApiError>
where
    S: Stream<Item = Result<Vec<Lead>, ApiError>> + Send + Unpin,
{
    req.target.validate(provider.field_rules())?;
    let anonymous = req.request_id.is_empty();
    let export_id =
        if anonymous { format!("anonymous:{}", uuid::Uuid::new_v4().simple()) } else { req.request_id.clone() };
    let key = ExportKey { tenant: &req.tenant, request_id: &export_id };
    let list_id = req.target.list_id().to_owned();

    let resume = match store::begin(&pool, key, &req.target.digest(), &list_id, req.instance).await.map_err(db)? {
        Begin::InProgress => {
            return Err(ApiError::new(
                Code::Aborted,
                "REQUEST_IN_PROGRESS",
                "an export with this request_id is still running; send it again once that one has ended",
            )
            .with_retry_after(Duration::from_secs(5)));
        }
        Begin::Mismatch => {
            return Err(ApiError::invalid_field(
                "request_id",
                "was already used for an export to another target; use a new id for a new export",
            )
            .with_metadata("rule", "IDEMPOTENCY_KEY_REUSED"));
        }
        Begin::Fresh => None,
        Begin::Resume { list_ready } => Some(list_ready),
    };

    let export = Export {
        pool: &pool,
        provider: provider.as_ref(),
        key,
        list_id: &list_id,
        resume: resume.is_some(),
        sent: AtomicBool::new(false),
    };
    let result = match export.prepare_list(&req.target, resume.unwrap_or(false)).await {
        Ok(()) => export.pipeline(leads).await,
        Err(e) => {
            // Nothing was done at the dialer and no lead went out: nothing to remember.
            if resume.is_none() && matches!(e, Prepare::NothingDone(_)) {
                let _ = store::delete(&pool, key).await;
            }
            Err(e.into())
        }
    };
    let done = if anonymous { store::delete(&pool, key).await } else { store::release(&pool, key).await };
    if let Err(e) = done {
        tracing::warn!(error = %e, "ending an export's lease failed; a repeat waits for the lease to run out");
    }
    result
}

fn db(e: sqlx::Error) -> ApiError {
    ApiError::database("dialer export store", &e)
}

/// Why the list could not be made ready.
enum Prepare {
    /// The dialer said no, the list is not active, or the dialer was not reached: nothing happened.
    NothingDone(ApiError),
    /// Anything else (a list creation of unknown outcome, the database).
    Other(ApiError),
}

impl From<Prepare> for ApiError {
    fn from(p: Prepare) -> Self {
        match p {
            Prepare::NothingDone(e) | Prepare::Other(e) => e,
        }
    }
}

struct Export<'a> {
    pool: &'a PgPool,
    provider: &'a dyn DialerProvider,
    key: ExportKey<'a>,
    list_id: &'a str,
    /// Outcomes may already be recorded (a repeat or a resume).
    resume: bool,
    /// This run sent leads to the dialer.
    sent: AtomicBool,
}

impl Export<'_> {
    /// Checks an existing list is active, or creates the new one (once per export).
    async fn prepare_list(&self, target: &Target, list_ready: bool) -> Result<(), Prepare> {
        if list_ready {
            return Ok(());
        }
        match target {
            Target::Existing(id) => {
                // A read: whatever its error, nothing was done.
                let active = self.provider.is_list_active(id).await.map_err(|e| Prepare::NothingDone(e.into()))?;
                if !active {
                    return Err(Prepare::NothingDone(
                        ApiError::failed_precondition(
                            "LIST_NOT_ACTIVE",
                            format!("list {id} is not among the dialer's active lists (ListActiveLists shows them)"),
                        )
                        .with_metadata("list_id", id.clone()),
                    ));
                }
            }
            Target::New(list) => match self.provider.create_list(list).await {
                Ok(_) => {}
                // A resumed export whose add_list answer was lost: the list is ours.
                Err(DialerError::Refused { kind: Refusal::ListExists, .. }) if self.resume => {}
                Err(
                    e @ (DialerError::Refused { .. }
                    | DialerError::Unavailable { .. }
                    | DialerError::Unsupported { .. }),
                ) => {
                    return Err(Prepare::NothingDone(under_target(e.into())));
                }
                Err(DialerError::OutcomeUnknown { provider, domain, message, .. }) => {
                    // The record stays, so that a repeat of this export knows the list may be its own.
                    return Err(Prepare::Other(
                        ApiError::outcome_unknown(
                            provider,
                            format!(
                                "{message}; list {} may or may not have been created and no lead was sent: send \
                                 the export again with the same request_id, which goes on with the list if it exists",
                                list.list_id
                            ),
                        )
                        .with_domain(domain),
                    ));
                }
            },
        }
        store::mark_list_ready(self.pool, self.key).await.map_err(|e| Prepare::Other(db(e)))?;
        store::remember_list(self.pool, self.key.tenant, self.list_id).await.map_err(|e| Prepare::Other(db(e)))
    }

    async fn pipeline<S>(&self, mut leads: S) -> Result<ExportSummary, ApiError>
    where
        S: Stream<Item = Result<Vec<Lead>, ApiError>> + Send + Unpin,
    {
        let shape = self.provider.export_shape();
        let concurrency = shape.concurrency.max(1);
        let cancel = CancellationToken::new();
        let fatal: Mutex<Option<ApiError>> = Mutex::new(None);
        let fail = |e: ApiError| {
            fatal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            cancel.cancel();
        };
        let (chunk_tx, chunk_rx) = mpsc::channel::<Chunk>(concurrency);
        let (row_tx, mut row_rx) = mpsc::channel::<Vec<LeadRow>>(concurrency * 2);

        let reader = async {
            let chunk_tx = chunk_tx;
            let mut chunker = Chunker::new(shape);
            let mut count: i64 = 0;
            let mut broken = None;
            'read: loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => break 'read,
                    next = leads.next() => next,
                };
                let batch = match next {
                    None => break,
                    Some(Ok(batch)) => batch,
                    Some(Err(e)) => {
                        broken = Some(e);
                        break;
                    }
                };
                for lead in batch {
                    let Ok(idx) = i32::try_from(count) else {
                        broken = Some(ApiError::invalid_field("batch.leads", "an export holds at most 2^31 leads"));
                        break 'read;
                    };
                    count += 1;
                    let (item, size) = self.check(idx, lead);
                    if let Some(chunk) = chunker.push(item, size)
                        && chunk_tx.send(chunk).await.is_err()
                    {
                        break 'read;
                    }
                }
            }
            // The leads read before a broken stream are sent too: the caller asked for them,
            // and a repeat of the export will find them recorded.
            if !cancel.is_cancelled()
                && let Some(chunk) = chunker.take()
            {
                let _ = chunk_tx.send(chunk).await;
            }
            (count, broken)
        };

        let senders = async {
            let row_tx = row_tx;
            ReceiverStream::new(chunk_rx)
                .map(|chunk| self.process(chunk, &cancel))
                .buffer_unordered(concurrency)
                .for_each(|result| async {
                    match result {
                        Ok(rows) if rows.is_empty() => {}
                        Ok(rows) => {
                            let _ = row_tx.send(rows).await;
                        }
                        Err(e) => fail(e),
                    }
                })
                .await;
        };

        let writer = async {
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            heartbeat.tick().await;
            let mut writing = true;
            loop {
                tokio::select! {
                    rows = row_rx.recv() => {
                        let Some(mut rows) = rows else { break };
                        // Whatever else is waiting goes in the same statement: one commit (one
                        // WAL flush) per write, however many batches finished meanwhile, so the
                        // writer keeps up with any number of senders.
                        while rows.len() < MAX_ROWS_PER_WRITE
                            && let Ok(more) = row_rx.try_recv()
                        {
                            rows.extend(more);
                        }
                        // After a failed write, keep draining so that the senders finish.
                        if writing && let Err(e) = store::record(self.pool, self.key, &rows).await {
                            writing = false;
                            fail(db(e));
                        }
                    }
                    _ = heartbeat.tick() => {
                        if let Err(e) = store::renew_lease(self.pool, self.key).await {
                            tracing::warn!(error = %e, "renewing an export's lease failed");
                        }
                    }
                }
            }
        };

        let ((count, broken), (), ()) = tokio::join!(reader, senders, writer);
        if let Some(e) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        if let Some(e) = broken {
            return Err(e);
        }
        self.summary(i32::try_from(count).unwrap_or(i32::MAX)).await
    }

    /// patchbay's own checks of a lead: normalised and sized, or refused.
    fn check(&self, idx: i32, lead: Lead) -> (Item, usize) {
        match validate::lead(lead, self.provider.export_shape().takes_phone_code, self.provider.field_rules()) {
            Err((phone, error)) => (Item::Reject { idx, phone, error }, 0),
            Ok(lead) => match self.provider.lead_wire_size(&lead) {
                Some(size) => (Item::Send { idx, lead }, size),
                None => (
                    Item::Reject {
                        idx,
                        phone: lead.phone_number,
                        error: "the lead's fields are too long for one dialer call".into(),
                    },
                    0,
                ),
            },
        }
    }

    /// One chunk: skip what is already settled, send the rest in one call, return the outcomes.
    async fn process(&self, chunk: Chunk, cancel: &CancellationToken) -> Result<Vec<LeadRow>, ApiError> {
        if cancel.is_cancelled() || chunk.items.is_empty() {
            return Ok(Vec::new());
        }
        let recorded = if self.resume {
            let (from, to) = (chunk.items[0].idx(), chunk.items[chunk.items.len() - 1].idx());
            store::recorded(self.pool, self.key, from, to).await.map_err(db)?
        } else {
            Default::default()
        };
        let resend_safe = self.provider.export_shape().resend_safe;
        let mut rows = Vec::with_capacity(chunk.items.len());
        let (mut to_send, mut to_resend) = (Vec::new(), Vec::new());
        for item in chunk.items {
            let mut maybe_sent = false;
            if let Some((phone, outcome)) = recorded.get(&item.idx()) {
                if phone != item.phone() {
                    return Err(ApiError::invalid_field(
                        "request_id",
                        format!(
                            "was already used for an export whose lead {} was another phone number; \
                             use a new id for a new export",
                            item.idx()
                        ),
                    )
                    .with_metadata("rule", "IDEMPOTENCY_KEY_REUSED"));
                }
                if outcome.settled(resend_safe) {
                    continue;
                }
                maybe_sent = outcome.maybe_sent();
            }
            match item {
                Item::Reject { idx, phone, error } => {
                    rows.push(LeadRow { idx, phone, outcome: Outcome::Rejected, lead_id: String::new(), error })
                }
                Item::Send { idx, lead } if maybe_sent => to_resend.push((idx, lead)),
                Item::Send { idx, lead } => to_send.push((idx, lead)),
            }
        }
        for (batch, resend) in [(to_send, false), (to_resend, true)] {
            if !batch.is_empty() {
                rows.extend(self.send(batch, resend).await?);
            }
        }
        Ok(rows)
    }

    /// One vendor call for a batch, resent while the dialer did not take it (bounded), and where
    /// that is safe, while its answer is unclear. `resend`: the batch was sent before without a
    /// clear answer.
    async fn send(&self, batch: Vec<(i32, Lead)>, mut resend: bool) -> Result<Vec<LeadRow>, ApiError> {
        let (indexes, leads): (Vec<i32>, Vec<Lead>) = batch.into_iter().unzip();
        let resend_safe = self.provider.export_shape().resend_safe;
        let retry = if resend_safe { RESEND_RETRY } else { BATCH_RETRY };
        let mut made = 0;
        let settle = |outcome: Outcome, lead_id: &str, error: &str| -> Vec<LeadRow> {
            indexes
                .iter()
                .zip(&leads)
                .map(|(&idx, lead)| LeadRow {
                    idx,
                    phone: lead.phone_number.clone(),
                    outcome,
                    lead_id: lead_id.to_owned(),
                    error: error.to_owned(),
                })
                .collect()
        };
        self.sent.store(true, Ordering::Relaxed);
        // On record before it goes: should this process die before the answer is recorded, a
        // resume finds these leads sent and never sends them again (they may be in the list).
        let sending = settle(Outcome::Sending, "", &self.unknown_error("sent, and the answer was never recorded"));
        store::record_sending(self.pool, self.key, &sending, !resend_safe).await.map_err(db)?;
        loop {
            made += 1;
            match self.provider.add_leads(self.list_id, &leads, resend).await {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    return Ok(indexes
                        .iter()
                        .zip(&leads)
                        .map(|(&idx, lead)| {
                            let phone = lead.phone_number.clone();
                            match outcomes.next() {
                                Some(LeadOutcome::Accepted { lead_id }) => {
                                    LeadRow { idx, phone, outcome: Outcome::Accepted, lead_id, error: String::new() }
                                }
                                Some(LeadOutcome::Duplicate { lead_id }) => LeadRow {
                                    idx,
                                    error: format!(
                                        "duplicate: phone {phone} is already in list {} as lead {lead_id}",
                                        self.list_id
                                    ),
                                    phone,
                                    outcome: Outcome::Duplicate,
                                    lead_id,
                                },
                                Some(LeadOutcome::Rejected { error }) => LeadRow {
                                    idx,
                                    phone,
                                    outcome: Outcome::Rejected,
                                    lead_id: String::new(),
                                    error: format!("refused by the dialer: {error}"),
                                },
                                Some(LeadOutcome::Unknown { error }) => LeadRow {
                                    idx,
                                    phone,
                                    outcome: Outcome::Unknown,
                                    lead_id: String::new(),
                                    error: self.unknown_error(&error),
                                },
                                None => LeadRow {
                                    idx,
                                    phone,
                                    outcome: Outcome::Unknown,
                                    lead_id: String::new(),
                                    error: self.unknown_error("the dialer's answer has no entry for this lead"),
                                },
                            }
                        })
                        .collect());
                }
                // Every further batch would meet the same refusal: stop the export.
                Err(e) if e.is_tenant_problem() => return Err(e.into()),
                // Provably not taken: safe to send again, a bounded number of times (more where
                // batches are single leads, each an unlucky draw of its own).
                Err(e @ DialerError::Unavailable { .. }) if retry.allows(made) => {
                    tracing::info!(attempt = made, error = %e, leads = leads.len(), "a lead batch was not taken; sending it again");
                    tokio::time::sleep(retry.delay(made)).await;
                }
                // An earlier attempt went without a clear answer: the lead may be in the list, so it
                // is not "not exported" (which a repeat would send as new) but of unknown outcome.
                Err(e @ DialerError::Unavailable { .. }) if resend => {
                    let why = format!("an attempt got no clear answer, the last ones were not taken ({e})");
                    return Ok(settle(Outcome::Unknown, "", &self.unknown_error(&why)));
                }
                Err(e @ DialerError::Unavailable { .. }) => {
                    let error = format!(
                        "not exported: {e} ({made} attempts); send the export again with the same request_id to retry"
                    );
                    return Ok(settle(Outcome::Failed, "", &error));
                }
                // Sent without a clear answer, where the vendor's duplicate check makes a resend
                // safe: sent again, a bounded number of times (a repeat of the export goes on).
                Err(e @ DialerError::OutcomeUnknown { .. }) if resend_safe && retry.allows(made) => {
                    tracing::info!(attempt = made, error = %e, leads = leads.len(), "no clear answer for a lead batch; sending it again");
                    resend = true;
                    tokio::time::sleep(retry.delay(made)).await;
                }
                // Sent without a clear answer: the leads may be in the list already. Recorded as
                // settled (where resending is not safe), so that neither this run nor a repeat
                // sends them again.
                Err(DialerError::OutcomeUnknown { message, .. }) => {
                    return Ok(settle(Outcome::Unknown, "", &self.unknown_error(&message)));
                }
                Err(DialerError::Refused { message, .. }) => {
                    return Ok(settle(Outcome::Rejected, "", &format!("refused by the dialer: {message}")));
                }
                Err(e @ DialerError::Unsupported { .. }) => return Err(e.into()),
            }
        }
    }

    fn unknown_error(&self, why: &str) -> String {
        if self.provider.export_shape().resend_safe {
            return format!(
                "outcome unknown: {why}; send the export again with the same request_id: it is resent, and the \
                 dialer's duplicate check keeps it from being added twice"
            );
        }
        format!(
            "outcome unknown: {why}; not sent again, so that it cannot be added twice (check list {} at the dialer)",
            self.list_id
        )
    }

    /// The answer, read back from the records in stream order.
    async fn summary(&self, count: i32) -> Result<ExportSummary, ApiError> {
        let mut results = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let (mut accepted, mut duplicates) = (0, 0);
        store::each_outcome(self.pool, self.key, count, |row| {
            match row.outcome {
                Outcome::Accepted => accepted += 1,
                Outcome::Duplicate => duplicates += 1,
                _ => {}
            }
            results.push(LeadResult {
                index: row.idx,
                phone_number: row.phone,
                lead_id: row.lead_id,
                error: row.error,
                outcome: row.outcome,
            });
        })
        .await
        .map_err(db)?;
        if results.len() != usize::try_from(count).unwrap_or(0) {
            return Err(ApiError::internal(
                "dialer export",
                &format!("{} outcomes recorded for {count} leads", results.len()),
            ));
        }
        Ok(ExportSummary {
            list_id: self.list_id.to_owned(),
            accepted,
            rejected: count - accepted - duplicates,
            duplicates,
            results,
            replayed: self.resume && !self.sent.load(Ordering::Relaxed),
        })
    }
}

/// A refusal of add_list during an export names the target's fields, not CreateList's.
fn under_target(mut e: ApiError) -> ApiError {
    for v in &mut e.violations {
        if let Some(rest) = v.field.strip_prefix("list") {
            v.field = format!("target.new_list{rest}");
        }
    }
    e
}

#[cfg(test)]
mod tests;
