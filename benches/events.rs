//! Events figures: `cargo bench --bench events`.
//!
//! 1. Inbound: 10,000 SIMPLer-style status changes for 1,000 customers POSTed over real HTTP to a
//!    trigger (64 in flight), each stored (with its desired status) before its 202: accepted per
//!    second, then the delay from each customer's last accepted change (`received_at`) to its
//!    status being applied at the Alianza simulator (`applied_at`: after the vendor answered).
//! 2. Outbound: 10,000 events committed to the outbox at a steady 1,000 a second, each as an area
//!    writes one (its transaction, then a wake-up), and the delay from the commit to the
//!    webhook's arrival at a real receiver that checks its signature: median and p99.
//!
//! Runs the real server (`App`) on a private, durable PostgreSQL cluster (fsync on), or on
//! `DATABASE_URL` if set.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use patchbay::{
    App, Settings,
    account::alianza::{AlianzaSim, sim::SimAccount},
    events::{deliver::webhook_id, receiver::WebhookReceiver},
    ops::{auth::TokenHash, webhooks::SigningKey},
    platform::events::{self, Event, EventType},
    store::{DatabaseConfig, EmbeddedOptions},
};

const TENANT: &str = "bench";
const PARTITION: &str = "bench-partition";
const TRIGGER_SECRET: &str = "bench-trigger-secret-0123456789abcdef";
const ENDPOINT_SECRET: &str = "whsec_cGF0Y2hiYXktZGVtby13ZWJob29rLXNlY3JldC0zMmI=";
const POSTS: usize = 10_000;
const CUSTOMERS: usize = 1_000;
const IN_FLIGHT: usize = 64;
const EVENTS: usize = 10_000;
const EVENTS_PER_SECOND: u64 = 1_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
    runtime.block_on(run());
}

fn number(i: usize) -> String {
    format!("7{:08}", i)
}

fn tenant_file(alianza: &str, receiver: &str) -> String {
    format!(
        "tenant: {TENANT}
access:
  tokens: [\"{}\"]
triggers:
  account:
    provider: alianza
    api_url: {alianza}
    admin_portal_url: https://admin.alianza.com
    partition_id: {PARTITION}
    username: bench@isp.example
    password: bench-alianza-password
    customer_status: true
    account_defaults: {{ time_zone: US/Eastern, regulatory_type: RESIDENTIAL, inbound_rate_plan_product_id: p, dialing_behavior: TEN_DIGIT, billing_cycle_day: 1 }}
events:
  inbound:
    status:
      auth: {{ path_secret: {TRIGGER_SECRET} }}
      event_id: /event_id
      timestamp: /changed_at
      customer: {{ nickname: /customer/nickname, status: /customer/status }}
      action: set_customer_status
  outbound:
    crm:
      url: {receiver}/webhooks
      secret: {ENDPOINT_SECRET}
      events: [order.state_changed]
",
        TokenHash::of_token("bench-token")
    )
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
    use std::os::unix::fs::PermissionsExt;
    println!("patchbay events bench ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let alianza = AlianzaSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    alianza.add_login("bench@isp.example", "bench-alianza-password", PARTITION);
    for i in 0..CUSTOMERS {
        alianza.seed_account(PARTITION, SimAccount::new(&number(i), "Bench Customer"));
    }
    let receiver =
        WebhookReceiver::start("127.0.0.1:0".parse().unwrap(), SigningKey::parse(ENDPOINT_SECRET).unwrap(), false)
            .unwrap();

    let dir: PathBuf = std::env::temp_dir().join(format!("patchbay-events-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("providers.d")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("providers.d/bench.yaml"), tenant_file(&alianza.url(), &receiver.url())).unwrap();
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
    let url = format!("http://{}/triggers/{TENANT}/status/{TRIGGER_SECRET}", app.http_addr());
    let state = app.state().clone();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));

    // 1. Inbound.
    let http = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build().unwrap();
    let base = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap();
    let started = Instant::now();
    stream::iter(0..POSTS)
        .for_each_concurrent(IN_FLIGHT, |i| {
            let (http, url) = (&http, &url);
            async move {
                let changed_at = base + chrono::Duration::milliseconds(i as i64);
                let status = if (i / CUSTOMERS).is_multiple_of(2) { "suspended" } else { "current" };
                let body = serde_json::json!({
                    "event_id": format!("evt-{i}"),
                    "changed_at": changed_at.to_rfc3339(),
                    "customer": { "nickname": number(i % CUSTOMERS), "status": status },
                });
                let r = http.post(url).json(&body).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 202, "post {i}: {}", r.text().await.unwrap_or_default());
            }
        })
        .await;
    let elapsed = started.elapsed();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM inbound_events WHERE state <> 'invalid'")
        .fetch_one(&state.db)
        .await
        .unwrap();
    assert_eq!(stored as usize, POSTS, "every 202 is a stored event");
    println!(
        "inbound: {POSTS} trigger posts for {CUSTOMERS} customers accepted in {:.2} s = {:.0} accepted/s ({IN_FLIGHT} in flight, each stored before its 202)",
        elapsed.as_secs_f64(),
        POSTS as f64 / elapsed.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let delays: Vec<f64> = loop {
        let rows: Vec<(String, Option<f64>)> = sqlx::query_as(
            "SELECT i.account_number,
                    EXTRACT(EPOCH FROM i.applied_at - (SELECT max(e.received_at) FROM inbound_events e
                                                         WHERE e.tenant = i.tenant AND e.customer = i.account_number
                                                           AND e.state = 'accepted'))::float8 * 1000
               FROM account_status_intents i WHERE i.tenant = $1 AND i.state = 'applied'",
        )
        .bind(TENANT)
        .fetch_all(&state.db)
        .await
        .unwrap();
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM account_status_intents WHERE tenant = $1 AND state <> 'applied'")
                .bind(TENANT)
                .fetch_one(&state.db)
                .await
                .unwrap();
        if rows.len() == CUSTOMERS && pending == 0 {
            break rows.into_iter().filter_map(|(_, d)| d).collect();
        }
        assert!(Instant::now() < deadline, "every customer's latest status applied within 2 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wrong = (0..CUSTOMERS)
        .filter(|&i| {
            let last = (POSTS - CUSTOMERS + i) / CUSTOMERS;
            let want = if last.is_multiple_of(2) { "DISABLED" } else { "ACTIVE" };
            alianza.account(PARTITION, &number(i)).unwrap().status != want
        })
        .count();
    assert_eq!(wrong, 0, "every customer's latest change won at the vendor");
    println!("  vendor status updates: {} for {POSTS} posts", alianza.calls().get("account.update"));
    report("last accepted change -> applied at the vendor", delays);

    // 2. Outbound.
    let tenant = state.registry.get(TENANT).unwrap();
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / EVENTS_PER_SECOND));
    let mut writers = Vec::new();
    for i in 0..EVENTS {
        tick.tick().await;
        let (state, tenant, committed) = (state.clone(), Arc::clone(&tenant), Arc::clone(&committed));
        writers.push(tokio::spawn(async move {
            let data = serde_json::json!({ "tenant": TENANT, "order_id": format!("bench-{i}"), "state": "completed" });
            let event = Event::new(EventType::OrderStateChanged, data);
            let mut tx = state.db.begin().await.unwrap();
            assert!(events::emit(&mut tx, &tenant, &event).await.unwrap());
            tx.commit().await.unwrap();
            committed.lock().unwrap().insert(webhook_id(&event.id), Instant::now());
            state.outbox.wake();
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.received().len() < EVENTS {
        assert!(Instant::now() < deadline, "every event delivered within a minute");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let received = receiver.received();
    assert!(received.iter().all(|r| r.signature_valid));
    let committed = std::mem::take(&mut *committed.lock().unwrap());
    let delays: Vec<f64> = received
        .iter()
        .map(|r| r.at.saturating_duration_since(committed[&r.webhook_id]).as_secs_f64() * 1000.0)
        .collect();
    println!(
        "outbound: {EVENTS} events committed at {EVENTS_PER_SECOND}/s, all delivered signed in {:.2} s ({} POSTs)",
        elapsed.as_secs_f64(),
        receiver.posts()
    );
    report("commit -> webhook at the receiver", delays);

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
    let _ = std::fs::remove_dir_all(&dir);
}
