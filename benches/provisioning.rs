//! ProvisioningService figures: `cargo bench --bench provisioning`.
//!
//! 1. Callbacks accepted per second by the receiver: 10,000 pending orders, then 10,000 Delacon
//!    callbacks POSTed over real HTTP (64 in flight), each committed before its ACCEPTED.
//! 2. Latency from a callback's commit to its WatchOrder client: a watcher per order, the
//!    callback POSTed, and the time from the order's `updated_at` (set by the committing
//!    transaction's last statement, `clock_timestamp()`) to the watcher receiving the change.
//!    Measured one order at a time (idle), then with 200 watchers whose callbacks land together
//!    (and, for those, the part after the callback's sender got its ACCEPTED).
//!
//! Runs the real server (`App`) on a private, durable PostgreSQL cluster (fsync on), or on
//! `DATABASE_URL` if set.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use patchbay::{
    App, Settings,
    ops::auth::TokenHash,
    proto::v1::{self as pb, provisioning_service_client::ProvisioningServiceClient},
    provisioning::{
        provider::{OrderState, VendorOrder},
        store,
    },
    store::{DatabaseConfig, EmbeddedOptions},
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

const TENANT: &str = "bench";
const TOKEN: &str = "bench-token";
const SECRET: &str = "bench-callback-secret-0123456789abcdef";
const CALLBACKS: usize = 10_000;
const IN_FLIGHT: usize = 64;
const LATENCY_SAMPLES: usize = 1_000;
const CONCURRENT_WATCHERS: usize = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
    runtime.block_on(run());
}

struct Server {
    http_url: String,
    channel: Channel,
    db: sqlx::PgPool,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), patchbay::AppError>>,
    dir: PathBuf,
}

async fn start() -> Server {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("patchbay-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("providers.d")).unwrap();
    // As root, PostgreSQL runs as `postgres`, which must traverse this folder.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tenant = format!(
        "tenant: {TENANT}\naccess:\n  tokens: [\"{}\"]\ntriggers:\n  provisioning:\n    provider: delacon\n    \
         api_url: simulator\n    auth_token: bench-key\n    callback_secret: {SECRET}\n",
        TokenHash::of_token(TOKEN)
    );
    std::fs::write(dir.join("providers.d/bench.yaml"), tenant).unwrap();
    let database = match std::env::var("DATABASE_URL") {
        Ok(url) => DatabaseConfig::Url(url),
        Err(_) => DatabaseConfig::Embedded(EmbeddedOptions::new(dir.join("postgres"))),
    };
    let mut settings = Settings::new(dir.join("providers.d"), database);
    settings.grpc_addr = ([127, 0, 0, 1], 0).into();
    settings.http_addr = ([127, 0, 0, 1], 0).into();
    settings.ops_addr = ([127, 0, 0, 1], 0).into();
    settings.watch = false;
    settings.max_db_connections = 80;
    let app = App::build(settings).await.unwrap_or_else(|e| panic!("the server did not start: {e}"));
    let http_url = format!("http://{}", app.http_addr());
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr())).unwrap().connect_lazy();
    let db = app.state().db.clone();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    Server { http_url, channel, db, stop, handle, dir }
}

/// `n` pending orders, stored exactly as ProvisionNumbers stores a WAIT answer.
async fn pending_orders(db: &sqlx::PgPool, prefix: &str, n: usize) -> Vec<String> {
    stream::iter(0..n)
        .map(|i| {
            let db = db.clone();
            let order_id = format!("{prefix}{i}");
            async move {
                let request_id = format!("req-{order_id}");
                let store::Submission::New(id) =
                    store::claim_submission(&db, TENANT, &request_id, order_id.as_bytes(), Duration::from_secs(60))
                        .await
                        .unwrap()
                else {
                    panic!("a fresh request_id");
                };
                let answer = VendorOrder {
                    order_id: order_id.clone(),
                    state: OrderState::Pending,
                    company_id: None,
                    numbers: Vec::new(),
                    message: "Your order is received.".into(),
                };
                store::record_answer(&db, id, TENANT, &answer, None).await.unwrap();
                order_id
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

async fn post_callback(http: &reqwest::Client, base: &str, order_id: &str) -> Instant {
    let url = format!("{base}/callbacks/delacon/{TENANT}/{SECRET}");
    let form = [("OrderID", order_id), ("Result", "OK"), ("Message", "Order completed")];
    let body = http.post(url).form(&form).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, r#"{"RESULT":"ACCEPTED"}"#, "order {order_id}");
    Instant::now()
}

fn authed<T>(msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap());
    req
}

/// Opens a watcher on `order_id` and returns it once it has the order's current (pending) state.
async fn watcher(channel: Channel, order_id: String) -> tonic::Streaming<pb::Order> {
    let mut client = ProvisioningServiceClient::new(channel);
    let req = pb::WatchOrderRequest { tenant: TENANT.into(), order_id };
    let mut stream = client.watch_order(authed(req)).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.state(), pb::OrderState::Pending);
    stream
}

/// Waits for the completed order; returns the time from its commit to now, in milliseconds.
async fn commit_to_watcher(stream: &mut tonic::Streaming<pb::Order>) -> f64 {
    let order = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("the change within 30 s")
        .unwrap()
        .unwrap();
    let received = Utc::now();
    assert_eq!(order.state(), pb::OrderState::Completed);
    let at = order.updated_at.expect("a stored order has updated_at");
    let committed = DateTime::<Utc>::from_timestamp(at.seconds, at.nanos as u32).expect("a valid Timestamp");
    (received - committed).num_microseconds().unwrap() as f64 / 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn report(label: &str, mut samples: Vec<f64>) {
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  {label}: n={} median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or_default()
    );
}

async fn run() {
    println!("patchbay provisioning bench ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let server = start().await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build().unwrap();

    // 1. Throughput of the callback receiver.
    let started = Instant::now();
    let orders = pending_orders(&server.db, "tp-", CALLBACKS).await;
    println!("  set-up: {CALLBACKS} pending orders stored in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    stream::iter(orders.iter())
        .for_each_concurrent(IN_FLIGHT, |id| {
            let http = &http;
            let base = &server.http_url;
            async move {
                post_callback(http, base, id).await;
            }
        })
        .await;
    let elapsed = started.elapsed();
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM provisioning_orders WHERE tenant = $1 AND order_id LIKE 'tp-%' AND state = 'completed'",
    )
    .bind(TENANT)
    .fetch_one(&server.db)
    .await
    .unwrap();
    assert_eq!(completed as usize, CALLBACKS, "every ACCEPTED callback is committed");
    println!(
        "callbacks: {CALLBACKS} accepted in {:.2} s = {:.0} callbacks/s ({IN_FLIGHT} in flight, each committed before ACCEPTED)",
        elapsed.as_secs_f64(),
        CALLBACKS as f64 / elapsed.as_secs_f64()
    );

    // 2a. Commit -> WatchOrder latency, one order at a time.
    let orders = pending_orders(&server.db, "lat-", LATENCY_SAMPLES).await;
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for id in &orders {
        let mut stream = watcher(server.channel.clone(), id.clone()).await;
        post_callback(&http, &server.http_url, id).await;
        samples.push(commit_to_watcher(&mut stream).await);
    }
    println!("commit -> WatchOrder client:");
    report("one order at a time", samples);

    // 2b. The same with many watchers whose callbacks land together.
    let orders = pending_orders(&server.db, "many-", CONCURRENT_WATCHERS).await;
    let streams: Vec<_> =
        stream::iter(orders.iter().cloned()).map(|id| watcher(server.channel.clone(), id)).buffered(32).collect().await;
    let waits: Vec<_> = streams
        .into_iter()
        .zip(orders.iter().cloned())
        .map(|(mut s, id)| tokio::spawn(async move { (id, commit_to_watcher(&mut s).await, Utc::now()) }))
        .collect();
    let http = Arc::new(http);
    let accepted = Arc::new(std::sync::Mutex::new(HashMap::new()));
    stream::iter(orders.iter())
        .for_each_concurrent(IN_FLIGHT, |id| {
            let http = Arc::clone(&http);
            let base = server.http_url.clone();
            let accepted = Arc::clone(&accepted);
            async move {
                post_callback(&http, &base, id).await;
                accepted.lock().unwrap().insert(id.clone(), Utc::now());
            }
        })
        .await;
    let (mut samples, mut after_accepted) = (Vec::new(), Vec::new());
    for w in waits {
        let (id, latency, received) = w.await.unwrap();
        samples.push(latency);
        let accepted_at = accepted.lock().unwrap()[&id];
        after_accepted.push((received - accepted_at).num_microseconds().unwrap() as f64 / 1000.0);
    }
    report(&format!("{CONCURRENT_WATCHERS} watchers, callbacks {IN_FLIGHT} in flight"), samples);
    // Where the time goes: after its ACCEPTED reached the sender, the rest is the watcher's path
    // (negative when the watcher was told first).
    report("  of which after the sender got ACCEPTED", after_accepted);

    let _ = server.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server.handle).await;
    let _ = std::fs::remove_dir_all(&server.dir);
}
