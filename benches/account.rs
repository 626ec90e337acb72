//! AccountService figures, side by side with the vendor calls made directly:
//!
//! 1. 10,000 GetAccountStatus calls of one tenant make exactly one login at the simulator.
//! 2. The gateway's cost: median and p99 latency, and throughput, of GetAccountStatus through
//!    patchbay (gRPC -> patchbay -> simulator) against the same Alianza requests made directly with
//!    reqwest against the same simulator, at concurrency 1 and 32.
//! 3. SyncSipLines of a 1,000-line account against the vendor's own time for the same reads.
//!
//! Run: `cargo bench --bench account`. Needs PostgreSQL's binaries, like the tests.

#[path = "../tests/account_support/mod.rs"]
mod account_support;
#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    future::Future,
    time::{Duration, Instant},
};

use account_support::{PARTITION, PASSWORD, TENANT, TOKEN, USERNAME, client, customer, demo_customer, serve, vendor};
use common::authed;
use futures::StreamExt;
use patchbay::{
    account::{
        AccountArea,
        alianza::{
            AlianzaSim,
            sim::{SimAccount, SimLine, SimUser, demo},
        },
    },
    proto::v1 as pb,
};

/// Rounds each side of a comparison is measured in.
const ROUNDS: usize = 6;

/// Latencies of one run, how long the run took, and the process CPU time it used.
#[derive(Default)]
struct Run {
    latencies: Vec<Duration>,
    wall: Duration,
    /// CPU time of the whole process (client, patchbay and simulator alike), all threads.
    cpu: Duration,
}

impl Run {
    fn extend(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.wall += other.wall;
        self.cpu += other.cpu;
    }

    /// Process CPU time per call: what a CPU-bound throughput is made of on a shared machine.
    fn cpu_per_call(&self) -> Duration {
        self.cpu / u32::try_from(self.latencies.len().max(1)).unwrap_or(u32::MAX)
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx]
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Runs `op` `n` times with `concurrency` in flight, timing each.
async fn measure<F, Fut>(n: usize, concurrency: usize, op: F) -> Run
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let (started, cpu) = (Instant::now(), process_cpu());
    let latencies = futures::stream::iter(0..n)
        .map(|_| {
            let call = op();
            async move {
                let t = Instant::now();
                call.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    Run { latencies, wall: started.elapsed(), cpu: process_cpu().saturating_sub(cpu) }
}

/// User and system CPU time of this process so far (Linux `/proc/self/stat`; zero elsewhere).
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // Fields after the `(comm)`: state is the first, utime and stime the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(") ").map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // The kernel reports clock ticks, 100 per second on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Alianza's requests for one status panel, made directly: the lookup, then users and lines
/// in parallel (calling-plan names are cached by both sides, so neither asks again).
struct Direct {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Direct {
    async fn login(sim: &AlianzaSim) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let answer: serde_json::Value = http
            .post(format!("{}/v2/authorize", sim.url()))
            .json(&serde_json::json!({ "username": USERNAME, "password": PASSWORD }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["authToken"].as_str().unwrap().to_owned();
        Self { http, base: format!("{}/v2/partition/{PARTITION}", sim.url()), token }
    }

    async fn get(&self, url: String) -> serde_json::Value {
        let resp = self.http.get(url).header("X-AUTH-TOKEN", &self.token).send().await.unwrap();
        assert!(resp.status().is_success());
        resp.json().await.unwrap()
    }

    /// What patchbay asks Alianza for one panel (or one sync).
    async fn panel(&self, number: &str) -> usize {
        let account = self.get(format!("{}/account/{number}?accountIdType=AccountNumber", self.base)).await;
        let id = account["id"].as_str().unwrap();
        let (users, lines) = tokio::join!(
            self.get(format!("{}/account/{id}/user", self.base)),
            self.get(format!("{}/account/{id}/deviceline", self.base))
        );
        users.as_array().unwrap().len() + lines.as_array().unwrap().len()
    }
}

/// gRPC clients over `n` separate connections, used in turn.
struct Pool {
    clients: Vec<pb::account_service_client::AccountServiceClient<tonic::transport::Channel>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Pool {
    fn new(app: &common::TestApp, n: usize) -> Self {
        let clients = (0..n)
            .map(|_| {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
                    .unwrap()
                    .connect_lazy();
                pb::account_service_client::AccountServiceClient::new(channel)
            })
            .collect();
        Self { clients, next: std::sync::atomic::AtomicUsize::new(0) }
    }

    fn next(&self) -> pb::account_service_client::AccountServiceClient<tonic::transport::Channel> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.clients[i % self.clients.len()].clone()
    }
}

fn main() {
    // Quiet: the harness would log every sync at info.
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    println!("AccountService benchmark (cargo bench --bench account)");
    println!(
        "machine: {} cores; figures on a shared, loaded machine vary run to run\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let sim = vendor();
    let app = serve(&sim, &[("timeout_ms", "10000")]).await;
    let grpc = client(&app);
    // Clients of the gateway: one HTTP/2 connection (one tonic Channel, as most callers have), or
    // a small pool of them (what a busy caller uses, so that one connection's framing does not
    // serialise every call).
    let one = Pool::new(&app, 1);
    let four = Pool::new(&app, 4);
    let panel = |pool: &Pool| {
        let mut grpc = pool.next();
        async move {
            let req = pb::GetAccountStatusRequest { tenant: TENANT.into(), customer: Some(demo_customer()) };
            let answer = grpc.get_account_status(authed(req, TOKEN)).await.unwrap();
            assert_eq!(answer.get_ref().sip_lines.len(), 3);
        }
    };

    // 1. Logins.
    let run = measure(10_000, 32, || panel(&one)).await;
    let logins = sim.logins();
    println!("1. logins for 10,000 GetAccountStatus calls of one tenant: {logins} (target: 1)");
    println!("   ({:.0} calls/s at concurrency 32)\n", run.throughput());
    assert_eq!(logins, 1, "one login per tenant, reused");

    // 2. The gateway's cost, against the same vendor requests made directly.
    let direct = Direct::login(&sim).await;
    let direct_op = || {
        let direct = &direct;
        async move {
            assert_eq!(direct.panel(demo::ACCOUNT).await, 5);
        }
    };
    println!("2. GetAccountStatus through patchbay vs the same Alianza requests made directly (reqwest)");
    println!("   {:<24} {:>10} {:>10} {:>9} {:>13} {:>9}", "", "median", "p99", "calls/s", "median added", "CPU/call");
    for (concurrency, connections, n) in [(1usize, 1usize, 3_000usize), (32, 1, 12_000), (32, 4, 12_000)] {
        let pool = if connections == 1 { &one } else { &four };
        // Warm both paths (connections, caches), then measure them in alternating rounds (ABBA),
        // so that the load of whatever else runs on the machine weighs on both alike.
        measure(200, concurrency, direct_op).await;
        measure(200, concurrency, || panel(pool)).await;
        let (mut d, mut g) = (Run::default(), Run::default());
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                d.extend(measure(n / ROUNDS, concurrency, direct_op).await);
                g.extend(measure(n / ROUNDS, concurrency, || panel(pool)).await);
            } else {
                g.extend(measure(n / ROUNDS, concurrency, || panel(pool)).await);
                d.extend(measure(n / ROUNDS, concurrency, direct_op).await);
            }
        }
        let added = g.percentile(0.5).saturating_sub(d.percentile(0.5));
        let label = format!("c={concurrency}, {connections} conn");
        for (name, r) in [("direct", &d), ("patchbay", &g)] {
            println!(
                "   {label:<14} {name:<9} {:>10} {:>10} {:>9.0} {:>13} {:>9}",
                ms(r.percentile(0.5)),
                ms(r.percentile(0.99)),
                r.throughput(),
                if name == "patchbay" { ms(added) } else { String::new() },
                us(r.cpu_per_call())
            );
        }
        let ratio = g.throughput() / d.throughput();
        let verdict_median = if added <= Duration::from_micros(500) { "ok" } else { "MISSED" };
        let verdict_tp = if ratio >= 0.8 { "ok" } else { "MISSED" };
        println!(
            "   {label:<14} median added {} (target <= 0.5 ms: {verdict_median}); throughput ratio {ratio:.2}{}",
            ms(added),
            if concurrency == 32 { format!(" (target >= 0.8: {verdict_tp})") } else { String::new() }
        );
    }
    // For scale: the cheapest gRPC call the same server answers (no vendor, no tenant), at c=32.
    let health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr)).unwrap().connect_lazy(),
    );
    let check = || {
        let mut health = health.clone();
        async move {
            health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
        }
    };
    measure(200, 32, check).await;
    let floor = measure(12_000, 32, check).await;
    println!(
        "   for scale, grpc.health.v1.Health/Check at c=32 on the same server: median {}, {:.0} calls/s, {} CPU/call",
        ms(floor.percentile(0.5)),
        floor.throughput(),
        us(floor.cpu_per_call())
    );
    // And patchbay's Alianza client alone (the library call GetAccountStatus makes, no gRPC).
    let trigger = app.state.registry.get(TENANT).unwrap().trigger::<AccountArea>().unwrap().inner.clone();
    let library = || {
        let provider = trigger.provider.clone();
        async move {
            assert_eq!(provider.account_panel(demo::ACCOUNT).await.unwrap().sip_lines.len(), 3);
        }
    };
    measure(200, 32, library).await;
    let lib = measure(12_000, 32, library).await;
    println!(
        "   for scale, the Alianza client alone (no gRPC) at c=32: median {}, {:.0} calls/s, {} CPU/call",
        ms(lib.percentile(0.5)),
        lib.throughput(),
        us(lib.cpu_per_call())
    );
    // A server runs each call in a task of its own; the loop above polls all 32 in one task, whose
    // wake-ups batch. The same client call, one task per call:
    let spawned = || {
        let provider = trigger.provider.clone();
        async move {
            let panel = tokio::spawn(async move { provider.account_panel(demo::ACCOUNT).await }).await;
            assert_eq!(panel.unwrap().unwrap().sip_lines.len(), 3);
        }
    };
    measure(200, 32, spawned).await;
    let own_task = measure(12_000, 32, spawned).await;
    println!(
        "   for scale, the Alianza client alone, one task per call, at c=32: median {}, {:.0} calls/s, {} CPU/call",
        ms(own_task.percentile(0.5)),
        own_task.throughput(),
        us(own_task.cpu_per_call())
    );
    println!(
        "   (at c=32 both paths are CPU-bound on this machine, so the throughput ratio is about the ratio of\n    \
         CPU/call: patchbay's = its Alianza client in a task of its own + a gRPC call, each measured above)"
    );
    println!();

    // 3. SyncSipLines of a 1,000-line account.
    let number = "900000001";
    sim.seed_account(PARTITION, SimAccount::new(number, "Big Customer"));
    let users: Vec<String> = (0..50)
        .map(|u| {
            sim.add_user(PARTITION, number, SimUser::new("User", &u.to_string(), "STANDARD", &format!("80155{u:05}")))
        })
        .collect();
    for i in 0..1000u32 {
        let mut line = SimLine::new(&format!("big-{i:04}"), i % 4 + 1, &format!("00CC{:08X}", i / 4));
        line.user_id = Some(users[i as usize % users.len()].clone());
        sim.add_line(PARTITION, number, line);
    }
    let mut vendor_times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        assert_eq!(direct.panel(number).await, 1050);
        vendor_times.push(t.elapsed());
    }
    vendor_times.sort();
    let vendor_time = vendor_times[vendor_times.len() / 2];
    let sync = |mode: pb::SyncMode, dry_run: bool| {
        let mut grpc = grpc.clone();
        async move {
            let req = pb::SyncSipLinesRequest {
                tenant: TENANT.into(),
                customer: Some(customer(number)),
                mode: mode.into(),
                dry_run,
                request_id: String::new(),
            };
            let t = Instant::now();
            let answer = grpc.sync_sip_lines(authed(req, TOKEN)).await.unwrap().into_inner();
            (t.elapsed(), answer)
        }
    };
    println!("3. SyncSipLines of a 1,000-line account (vendor's own time for the same reads: {})", ms(vendor_time));
    let report = |what: &str, took: Duration, a: &pb::SyncSipLinesResponse| {
        let beyond = took.saturating_sub(vendor_time);
        let verdict = if beyond <= Duration::from_millis(100) { "ok" } else { "MISSED" };
        println!(
            "   {what:<34} {:>11}  beyond the vendor: {:>11} (target <= 100 ms: {verdict})  [+{} ~{} -{} ={}]",
            ms(took),
            ms(beyond),
            a.added.len(),
            a.updated.len(),
            a.deleted.len(),
            a.unchanged.len()
        );
    };
    let (took, a) = sync(pb::SyncMode::Full, true).await;
    report("FULL dry run, empty table", took, &a);
    let (took, a) = sync(pb::SyncMode::Full, false).await;
    assert_eq!(a.added.len(), 1000);
    report("FULL, empty table (1,000 adds)", took, &a);
    for i in 0..100 {
        sim.edit_line(PARTITION, &format!("big-{i:04}"), |l| l.sip_password = "rotated".into());
        sim.remove_line(PARTITION, &format!("big-{:04}", 100 + i));
        sim.add_line(PARTITION, number, SimLine::new(&format!("new-{i:04}"), 1, &format!("00DD{i:08X}")));
    }
    let (took, a) = sync(pb::SyncMode::Full, false).await;
    assert_eq!((a.added.len(), a.updated.len(), a.deleted.len()), (100, 100, 100));
    report("FULL, 100 added/changed/removed", took, &a);
    let mut times = Vec::new();
    for _ in 0..5 {
        let (took, a) = sync(pb::SyncMode::AddOnly, false).await;
        assert_eq!(a.unchanged.len(), 1000);
        times.push((took, a));
    }
    times.sort_by_key(|(t, _)| *t);
    let (took, a) = &times[times.len() / 2];
    report("ADD_ONLY, nothing changed (median)", *took, a);
    println!("\nsimulator calls: {:?}", sim.calls().snapshot());
}
