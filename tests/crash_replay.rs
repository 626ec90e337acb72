//! An Elision export across three `kill -9`s of the server binary: the same stream and
//! request_id resent after each restart. Elision cannot tell whether a batch whose answer was
//! lost was added, so such a batch's leads end OUTCOME_UNKNOWN and are never sent again; every
//! other lead reaches the dialer exactly once, and each replay is taken at once (the dead
//! process's lease does not hold it off).

mod common;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use common::{ServeProcess, tenant_yaml};
use patchbay::{
    dialer::elision::sim::ElisionSim,
    proto::v1::{self as pb, dialer_service_client::DialerServiceClient, export_leads_request::Part},
};
use tonic::transport::Channel;

const LEADS: usize = 20_000;
const LIST: &str = "8001";

fn phone(i: usize) -> String {
    format!("555{i:07}")
}

fn export_messages() -> Vec<pb::ExportLeadsRequest> {
    let mut msgs = vec![pb::ExportLeadsRequest {
        tenant: "acme".into(),
        request_id: "crash-elision".into(),
        part: Some(Part::Target(pb::ExportTarget { list: Some(pb::export_target::List::ExistingListId(LIST.into())) })),
    }];
    let leads: Vec<pb::Lead> = (0..LEADS)
        .map(|i| pb::Lead { phone_number: phone(i), first_name: format!("Lead {i}"), ..Default::default() })
        .collect();
    for chunk in leads.chunks(1000) {
        msgs.push(pb::ExportLeadsRequest {
            part: Some(Part::Batch(pb::LeadBatch { leads: chunk.to_vec() })),
            ..Default::default()
        });
    }
    msgs
}

async fn export(grpc: String) -> Result<pb::ExportLeadsResponse, tonic::Status> {
    let channel = Channel::from_shared(grpc).unwrap().connect().await.unwrap();
    let request = common::authed(tokio_stream::iter(export_messages()), "acme-token");
    DialerServiceClient::new(channel).export_leads(request).await.map(tonic::Response::into_inner)
}

/// Waits until the dialer holds more than `than` leads of the list, or the export has answered;
/// how long that took.
async fn first_progress(sim: &ElisionSim, than: usize, call: &tokio::task::JoinHandle<impl Sized>) -> Duration {
    let started = Instant::now();
    while sim.lead_count(LIST) <= than && !call.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(60), "the replay made no progress in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elision_export_killed_three_times_adds_each_lead_at_most_once_and_each_replay_starts_at_once() {
    let sim = ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap();
    sim.add_list(LIST, "Crash export", "TESTCAMP", true);
    // Slow enough to be killed mid-way: 200 batches of 100, 4 in flight, 40 ms each.
    sim.faults().set_latency(Duration::from_millis(40));
    let providers = tempfile::tempdir().unwrap();
    let tenant = format!(
        "{}triggers:\n  dialer:\n    provider: elision\n    api_url: {}\n    source: test\n    username: api\n    \
         password: '1234'\n",
        tenant_yaml("acme", "acme-token"),
        sim.url()
    );
    std::fs::write(providers.path().join("acme.yaml"), tenant).unwrap();
    let database_url = common::fresh_database().await;
    let start = || {
        let (dir, url) = (providers.path().to_owned(), database_url.clone());
        tokio::task::spawn_blocking(move || ServeProcess::start(&dir, &url))
    };

    let mut before = 0;
    for kill_at in [LEADS / 5, LEADS / 2, LEADS * 4 / 5] {
        let server = start().await.unwrap();
        let call = tokio::spawn(export(server.grpc.clone()));
        let waited = first_progress(&sim, before, &call).await;
        assert!(waited < Duration::from_secs(5), "a replay taken at once, not held off by a lease: {waited:?}");
        while sim.lead_count(LIST) < kill_at {
            assert!(!call.is_finished(), "the export ended before the kill point: {:?}", call.await);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::task::spawn_blocking(move || server.kill9()).await.unwrap();
        assert!(call.await.unwrap().is_err(), "the cut-off stream fails");
        before = sim.lead_count(LIST);
        assert!(before < LEADS, "killed mid-export ({before} leads in)");
    }

    let server = start().await.unwrap();
    let started = Instant::now();
    let answer = export(server.grpc.clone()).await.expect("the last replay completes");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());

    let mut held: HashMap<String, usize> = HashMap::new();
    for lead in sim.leads_in(LIST) {
        *held.entry(lead.phone_number).or_default() += 1;
    }
    let twice: Vec<_> = held.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "leads added twice: {twice:?}");
    assert_eq!(answer.results.len(), LEADS);
    let mut unknown = 0;
    for (i, result) in answer.results.iter().enumerate() {
        let at_dialer = held.contains_key(&phone(i));
        match result.status() {
            pb::LeadStatus::Accepted => assert!(at_dialer, "lead {i} accepted but not at the dialer"),
            pb::LeadStatus::OutcomeUnknown => unknown += 1,
            other => panic!("lead {i}: {other:?} {}", result.error),
        }
    }
    // Unknown at each kill: the batches in flight (4) and those answered whose answers were not
    // yet written (the writer's queue of 8, one being queued and one being written), 100 leads each.
    let per_kill = (4 + 8 + 2) * 100;
    assert!(unknown <= 3 * per_kill, "{unknown} leads of unknown outcome");
    assert_eq!(answer.accepted as usize + unknown, LEADS, "every lead accounted for");
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
}
