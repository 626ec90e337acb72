//! Lead export throughput and memory: `cargo bench --bench dialer`.
//!
//! Runs `patchbay serve` as a child process (its own private PostgreSQL, or `DATABASE_URL`),
//! with two tenants whose dialers are simulators in this process answering every call after
//! 20 ms: Elision (batches of 100 leads, 4 calls in flight) and stock VICIdial (one add_lead per
//! lead, 8 in flight). Exports 10,000 and 100,000 leads to Elision and 20,000 to VICIdial
//! through gRPC and prints, for each:
//! - leads per second and the vendor calls made;
//! - the ratio of the vendor-bound time (batch calls x latency / concurrency) to the time taken
//!   (1.0: patchbay adds nothing to the dialer's own time; target at least 0.8);
//! - patchbay's resident memory above idle during each export, sampled from /proc/<pid>/statm:
//!   while the leads stream (bounded: it must not grow with the export's size), and at the peak,
//!   which includes the answer's one result per lead (target: at most 64 MB for 100,000 leads);
//! - a baseline: the same batch calls sent straight from this process with the Elision client,
//!   which shows what a call costs on this machine besides the simulated latency.

mod support;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use patchbay::{
    dialer::{
        elision::{ElisionClient, client::EXPORT_CONCURRENCY, sim::ElisionSim, wire::MAX_LEADS_PER_CALL},
        provider::{DialerProvider, Lead},
        vicidial::{client::DEFAULT_EXPORT_CONCURRENCY, sim::VicidialSim},
    },
    ops::auth::TokenHash,
    proto::v1::{
        self as pb, dialer_service_client::DialerServiceClient, export_leads_request::Part, export_target::List,
    },
    sim::Calls,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

/// The simulated dialer's time per call (`DIALER_BENCH_LATENCY_MS` overrides it, e.g. 0 to see
/// patchbay's own cost alone).
fn latency() -> Duration {
    Duration::from_millis(std::env::var("DIALER_BENCH_LATENCY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(20))
}
const TOKEN: &str = "bench-token";
const LEADS_PER_MESSAGE: usize = 1_000;

/// Resident set size of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Samples `pid`'s RSS every 10 ms until stopped; returns the peak.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss(pid)));
        let thread = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Self { stop, peak, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

fn spawn_server(dir: &Path, grpc: u16, http: u16, ops: u16) -> Child {
    let log = std::fs::File::create(dir.join("patchbay.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patchbay"));
    cmd.arg("serve")
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--ops-addr", &format!("127.0.0.1:{ops}")])
        .arg("--providers-dir")
        .arg(dir.join("providers.d"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    cmd.spawn().expect("starting patchbay serve")
}

/// One provider under test: its tenant, target list, simulator's call counts and batch function.
struct Dialer<'a> {
    name: &'static str,
    tenant: &'static str,
    list: &'static str,
    calls: &'a Calls,
    batch_function: &'static str,
    concurrency: usize,
}

/// Streams `n` leads, generated as they are sent (the bench holds no export in memory either),
/// with phones from `first` on (VICIdial refuses a phone already in the list).
/// `on_sent` runs once the last message has been handed to gRPC.
async fn export(
    client: &mut DialerServiceClient<Channel>,
    dialer: &Dialer<'_>,
    request_id: &str,
    (first, n): (usize, usize),
    on_sent: impl FnOnce() + Send + 'static,
) -> pb::ExportLeadsResponse {
    let target = pb::ExportLeadsRequest {
        tenant: dialer.tenant.into(),
        request_id: request_id.into(),
        part: Some(Part::Target(pb::ExportTarget { list: Some(List::ExistingListId(dialer.list.into())) })),
    };
    let batches = futures::stream::iter((first..first + n).step_by(LEADS_PER_MESSAGE)).map(move |start| {
        let leads = (start..(start + LEADS_PER_MESSAGE).min(first + n))
            .map(|i| pb::Lead {
                phone_number: format!("+1 555 {i:07}"),
                first_name: format!("First{i}"),
                last_name: "Benchmark".into(),
                email: format!("lead{i}@example.com"),
                city: "Ahmedabad".into(),
                postal_code: "380007".into(),
                vendor_lead_code: format!("CRM-{i}"),
                phone_code: String::new(),
            })
            .collect();
        pb::ExportLeadsRequest { part: Some(Part::Batch(pb::LeadBatch { leads })), ..Default::default() }
    });
    let sent = futures::stream::once(async move { on_sent() }).filter_map(|()| async { None });
    let mut req = Request::new(futures::stream::iter([target]).chain(batches).chain(sent));
    req.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap());
    client.export_leads(req).await.expect("the export succeeds").into_inner()
}

struct Run {
    provider: &'static str,
    concurrency: usize,
    leads: usize,
    seconds: f64,
    batch_calls: u64,
    other_calls: u64,
    peak_above_idle: u64,
    /// The peak until the last lead was sent, before the answer is assembled.
    streaming_peak_above_idle: u64,
    patchbay_cpu: f64,
    bench_cpu: f64,
}

async fn measure(
    client: &mut DialerServiceClient<Channel>,
    dialer: &Dialer<'_>,
    pid: u32,
    (first, n): (usize, usize),
    request_id: &str,
) -> Run {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss(pid);
    let before = dialer.calls.snapshot();
    let sampler = Sampler::start(pid);
    let (cpu0, own0) = (support::cpu_of(&pid.to_string()), support::cpu_of("self"));
    let started = Instant::now();
    let streaming_peak = Arc::new(AtomicU64::new(0));
    let resp = export(client, dialer, request_id, (first, n), {
        let (sampled, streaming_peak) = (sampler.peak.clone(), streaming_peak.clone());
        move || streaming_peak.store(sampled.load(Ordering::Relaxed).max(rss(pid)), Ordering::Relaxed)
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let peak = sampler.finish();
    let (patchbay_cpu, bench_cpu) =
        ((support::cpu_of(&pid.to_string()) - cpu0).as_secs_f64(), (support::cpu_of("self") - own0).as_secs_f64());
    assert_eq!(resp.accepted as usize, n, "every lead accepted");
    assert_eq!(resp.results.len(), n);
    let after = dialer.calls.snapshot();
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let batch_calls = delta(dialer.batch_function);
    let other_calls = after.values().sum::<u64>() - before.values().sum::<u64>() - batch_calls;
    Run {
        provider: dialer.name,
        concurrency: dialer.concurrency,
        leads: n,
        seconds,
        batch_calls,
        other_calls,
        peak_above_idle: peak.saturating_sub(idle),
        streaming_peak_above_idle: streaming_peak.load(Ordering::Relaxed).saturating_sub(idle),
        patchbay_cpu,
        bench_cpu,
    }
}

fn report(r: &Run, batch_function: &str) {
    let bound = r.batch_calls as f64 * latency().as_secs_f64() / r.concurrency as f64;
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("{}: export of {} leads", r.provider, r.leads);
    println!("  time                 {:.2} s  ({:.0} leads/s)", r.seconds, r.leads as f64 / r.seconds);
    println!("  vendor calls         {} {batch_function} + {} other", r.batch_calls, r.other_calls);
    println!(
        "  vendor-bound time    {:.2} s  ({} calls x {} ms / concurrency {})",
        bound,
        r.batch_calls,
        latency().as_millis(),
        r.concurrency
    );
    println!("  ratio to the bound   {:.2}  (target >= 0.80)", bound / r.seconds);
    println!(
        "  CPU                  patchbay {:.2} s, this process (simulator + gRPC client) {:.2} s",
        r.patchbay_cpu, r.bench_cpu
    );
    println!(
        "  RSS above idle       {:.1} MB while streaming; {:.1} MB peak with the answer (one result per lead)",
        mb(r.streaming_peak_above_idle),
        mb(r.peak_above_idle)
    );
}

/// The same batch calls sent straight from this process with the Elision client, `concurrency`
/// at a time, without patchbay: what one call costs on this machine besides the dialer's latency.
async fn direct_baseline(sim: &ElisionSim, calls: usize) -> f64 {
    let client = ElisionClient::new(
        patchbay::ops::vendor::VendorHttp::new(reqwest::Client::new(), Default::default(), "elision", "bench"),
        sim.url().parse().unwrap(),
        "bench",
        "api".to_owned().into(),
        "1234".to_owned().into(),
    );
    let batch: Vec<Lead> = (0..MAX_LEADS_PER_CALL)
        .map(|i| Lead { phone_number: format!("1555{i:07}"), first_name: format!("First{i}"), ..Lead::default() })
        .collect();
    let started = Instant::now();
    futures::stream::iter(0..calls)
        .map(|_| client.add_leads("20042018", &batch, false))
        .buffer_unordered(EXPORT_CONCURRENCY)
        .for_each(|r| async move {
            r.expect("the batch is taken");
        })
        .await;
    started.elapsed().as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sim = ElisionSim::start(([127, 0, 0, 1], 0).into()).unwrap();
        sim.faults().set_latency(latency());
        let vici = VicidialSim::start(([127, 0, 0, 1], 0).into()).unwrap();
        vici.faults().set_latency(latency());

        let dir = tempfile::tempdir().unwrap();
        // As root, the private PostgreSQL runs as `postgres`, which must traverse this folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("providers.d")).unwrap();
        let tenant = format!(
            "tenant: bench\naccess:\n  tokens: [\"{}\"]\ntriggers:\n  dialer:\n    provider: elision\n    \
             api_url: {}\n    source: bench\n    username: api\n    password: \"1234\"\n",
            TokenHash::of_token(TOKEN),
            sim.url()
        );
        std::fs::write(dir.path().join("providers.d/bench.yaml"), tenant).unwrap();
        let tenant = format!(
            "tenant: bench-vicidial\naccess:\n  tokens: [\"{}\"]\ntriggers:\n  dialer:\n    provider: vicidial\n    \
             api_url: {}\n    source: bench\n    username: api\n    password: \"1234\"\n",
            TokenHash::of_token(TOKEN),
            vici.url()
        );
        std::fs::write(dir.path().join("providers.d/bench-vicidial.yaml"), tenant).unwrap();
        let elision = Dialer {
            name: "elision",
            tenant: "bench",
            list: "20042018",
            calls: sim.calls(),
            batch_function: "add_multi_lead",
            concurrency: EXPORT_CONCURRENCY,
        };
        let vicidial = Dialer {
            name: "vicidial",
            tenant: "bench-vicidial",
            list: "20042018",
            calls: vici.calls(),
            batch_function: "add_lead",
            concurrency: DEFAULT_EXPORT_CONCURRENCY,
        };

        let (grpc, http, ops) = (support::free_port(), support::free_port(), support::free_port());
        let mut child = spawn_server(dir.path(), grpc, http, ops);
        support::wait_healthy(ops, &mut child, dir.path()).await;
        let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc}")).unwrap().connect().await.unwrap();
        // The answer holds one result per lead: a 100,000-lead answer is about 3 MB.
        let mut client = DialerServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);

        println!(
            "patchbay (pid {}) -> simulators with {} ms per call; Elision {} batch calls in flight, VICIdial {} \
             add_lead calls",
            child.id(),
            latency().as_millis(),
            EXPORT_CONCURRENCY,
            DEFAULT_EXPORT_CONCURRENCY
        );
        // Warm up: connections, the database pool, the allocator.
        export(&mut client, &elision, "warm-up", (0, 2_000), || ()).await;
        export(&mut client, &vicidial, "warm-up-v", (900_000, 500), || ()).await;
        let vici_leads =
            std::env::var("DIALER_BENCH_VICIDIAL_LEADS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        let runs = [
            (&vicidial, vici_leads, "bench-v-20k"),
            (&elision, 10_000, "bench-10k"),
            (&elision, 100_000, "bench-100k"),
        ];
        for (dialer, n, id) in runs {
            let run = measure(&mut client, dialer, child.id(), (0, n), id).await;
            report(&run, dialer.batch_function);
        }
        let calls = 100_000 / MAX_LEADS_PER_CALL;
        let direct = direct_baseline(&sim, calls).await;
        let bound = calls as f64 * latency().as_secs_f64() / EXPORT_CONCURRENCY as f64;
        println!("baseline without patchbay: the same {calls} batch calls straight from this process");
        println!(
            "  time                 {direct:.2} s  (ratio to the bound {:.2}: this machine's own per-call cost)",
            bound / direct
        );

        // SAFETY: plain kill(2) of the child this bench started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = child.wait();
    });
}
