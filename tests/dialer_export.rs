//! The lead-export pipeline against a real PostgreSQL, with a dialer of the test's own that can
//! stop answering mid-batch, as a `kill -9` of patchbay would leave an export: sent, unanswered.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use patchbay::{
    dialer::{
        export::{self, ExportRequest, Target},
        provider::{Ack, DialList, DialerError, DialerProvider, ExportShape, Lead, LeadOutcome},
    },
    ops::ApiError,
    store::MIGRATOR,
};

/// A dialer that takes every lead, counting what it received by phone; the batch whose first
/// lead is `hang_on` never gets an answer (the lead is added, the answer lost).
#[derive(Default)]
struct Dialer {
    received: Mutex<HashMap<String, u32>>,
    hang_on: Mutex<Option<String>>,
}

#[tonic::async_trait]
impl DialerProvider for Dialer {
    async fn create_agent(&self, _: &patchbay::dialer::provider::Agent) -> Result<Ack, DialerError> {
        unimplemented!("not used by exports")
    }
    async fn update_agent(&self, _: &patchbay::dialer::provider::Agent) -> Result<Ack, DialerError> {
        unimplemented!("not used by exports")
    }
    async fn create_list(&self, _: &DialList) -> Result<Ack, DialerError> {
        unimplemented!("not used by exports to an existing list")
    }
    async fn active_lists(&self, _: &[String]) -> Result<Vec<DialList>, DialerError> {
        Ok(vec![DialList { list_id: "1101".into(), name: "Export".into(), campaign_id: "C".into(), active: true }])
    }
    async fn add_leads(&self, _: &str, leads: &[Lead], _: bool) -> Result<Vec<LeadOutcome>, DialerError> {
        {
            let mut received = self.received.lock().unwrap();
            for lead in leads {
                *received.entry(lead.phone_number.clone()).or_default() += 1;
            }
        }
        let hang = self.hang_on.lock().unwrap().clone();
        if hang.is_some_and(|p| leads[0].phone_number == p) {
            std::future::pending::<()>().await;
        }
        Ok(leads.iter().map(|l| LeadOutcome::Accepted { lead_id: format!("id-{}", l.phone_number) }).collect())
    }
    fn export_shape(&self) -> ExportShape {
        ExportShape {
            concurrency: 1,
            max_leads_per_call: 10,
            max_bytes_per_call: 1 << 20,
            takes_phone_code: true,
            resend_safe: false,
        }
    }
    fn field_rules(&self) -> &'static patchbay::dialer::provider::FieldRules {
        &patchbay::dialer::elision::wire::RULES
    }

    fn lead_wire_size(&self, _: &Lead) -> Option<usize> {
        Some(10)
    }
}

fn leads(n: usize) -> Vec<Lead> {
    (0..n).map(|i| Lead { phone_number: format!("55501{i:05}"), ..Lead::default() }).collect()
}

fn request(instance: i64) -> ExportRequest {
    ExportRequest {
        tenant: "acme".into(),
        request_id: "exp-crash".into(),
        target: Target::Existing("1101".into()),
        instance,
    }
}

fn stream(leads: Vec<Lead>) -> impl futures::Stream<Item = Result<Vec<Lead>, ApiError>> + Send + Unpin {
    futures::stream::iter(leads.chunks(10).map(|c| Ok(c.to_vec())).collect::<Vec<_>>())
}

#[tokio::test]
async fn an_export_cut_off_mid_batch_resumes_at_once_and_never_sends_the_unanswered_batch_again() {
    let url = common::fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    let dialer = Arc::new(Dialer::default());
    let all = leads(50);
    // The third batch (leads 20-29) reaches the dialer, and then the process "dies": no answer.
    *dialer.hang_on.lock().unwrap() = Some(all[20].phone_number.clone());
    // The dead process's instance key: nobody holds its lock.
    let dead = 0x5eed_dead;
    let first = tokio::spawn(export::run(pool.clone(), dialer.clone(), request(dead), stream(all.clone())));
    // Dies once the third batch is out and the first two batches' answers are on record.
    let sent = async {
        loop {
            let out = dialer.received.lock().unwrap().contains_key(&all[20].phone_number);
            let answered: i64 =
                sqlx::query_scalar("SELECT count(*) FROM dialer_export_leads WHERE outcome = 'accepted'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            if out && answered == 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), sent).await.unwrap();
    first.abort();
    let _ = first.await;

    // The replay, by a live process: taken over at once (not ABORTED for the lease's minute).
    *dialer.hang_on.lock().unwrap() = None;
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        export::run(pool.clone(), dialer.clone(), request(7), stream(all.clone())),
    )
    .await
    .expect("resumed at once")
    .unwrap();

    let received = dialer.received.lock().unwrap().clone();
    assert_eq!(received.len(), 50, "every lead reached the dialer");
    assert!(received.values().all(|n| *n == 1), "none twice: {received:?}");
    assert_eq!(summary.accepted, 40);
    for r in &summary.results[20..30] {
        assert!(r.error.starts_with("outcome unknown: sent, and the answer was never recorded"), "{}", r.error);
    }
    assert!(summary.results[30..].iter().all(|r| r.lead_id.starts_with("id-")));
}
