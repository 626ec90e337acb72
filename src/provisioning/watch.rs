//! The order watch hub: one PostgreSQL `LISTEN` per process, fanned out to the WatchOrder
//! streams of that process; and the [`Announcer`] that sends the callbacks' `NOTIFY`s in batches.
//!
//! Every change to an order is announced with `NOTIFY` right after the transaction that makes it
//! commits (see [`super::store`]), whichever replica makes it; each replica's hub hears it and
//! wakes the watchers of that order, which re-read the order (and re-read it every few seconds
//! anyway, in case an announcement was lost to a crash between the commit and the NOTIFY). A watcher subscribes before it reads the
//! order the first time, and the hub is listening before any subscription is handed out, so no
//! change falls between the read and the subscription. If the listening connection drops,
//! notifications may have been missed, so every watcher is woken to re-read.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{Connection, PgConnection, PgPool, postgres::PgListener};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::store::{self, Announcement, CHANNEL, OrderChange};
use crate::ops::retry::Backoff;

type Key = (String, String);

/// What a watcher is told: a counter bumped at each (possible) change, and the change itself when
/// the announcement carried it.
type Signal = (u64, Option<Arc<OrderChange>>);

/// Fans out order notifications to watchers. Cheap to clone.
#[derive(Clone)]
pub struct OrderHub {
    inner: Arc<Inner>,
}

struct Inner {
    /// (tenant, order id) -> its latest signal; watchers wait for it to move.
    orders: Mutex<HashMap<Key, watch::Sender<Signal>>>,
    /// Whether the hub is listening now.
    listening: watch::Sender<bool>,
}

/// The hub is not listening (the database is unreachable).
#[derive(Debug, thiserror::Error)]
#[error("order notifications are unavailable: the database listener is not connected")]
pub struct HubDown;

impl OrderHub {
    /// Starts listening on `pool`'s database until `shutdown`.
    pub fn start(pool: PgPool, shutdown: CancellationToken) -> Self {
        let (listening, _) = watch::channel(false);
        let hub = Self { inner: Arc::new(Inner { orders: Mutex::default(), listening }) };
        tokio::spawn(hub.clone().listen(pool, shutdown));
        hub
    }

    /// Watches one order. Returns once the hub is listening, so that any change committed after
    /// this returns is seen.
    pub async fn subscribe(&self, tenant: &str, order_id: &str) -> Result<Subscription, HubDown> {
        let mut listening = self.inner.listening.subscribe();
        match tokio::time::timeout(Duration::from_secs(5), listening.wait_for(|on| *on)).await {
            Ok(Ok(_)) => {}
            _ => return Err(HubDown),
        }
        let key = (tenant.to_owned(), order_id.to_owned());
        let rx = {
            let mut orders = self.lock();
            orders.entry(key.clone()).or_insert_with(|| watch::channel((0, None)).0).subscribe()
        };
        Ok(Subscription { hub: Arc::clone(&self.inner), key, rx: Some(rx) })
    }

    /// Watchers now, across all orders (for tests and metrics).
    pub fn watched_orders(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, watch::Sender<Signal>>> {
        self.inner.orders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dispatch(&self, payload: &str) {
        let Ok(Announcement { tenant, order_id, change }) = serde_json::from_str::<Announcement>(payload) else {
            tracing::warn!(payload = ?payload.chars().take(200).collect::<String>(), "ignoring a malformed order notification");
            return;
        };
        let orders = self.lock();
        if let Some(tx) = orders.get(&(tenant, order_id)) {
            let change = change.map(Arc::new);
            tx.send_modify(|(n, latest)| {
                *n += 1;
                *latest = change;
            });
        }
    }

    /// Wakes every watcher to read its order again (notifications may have been missed).
    fn wake_all(&self) {
        for tx in self.lock().values() {
            tx.send_modify(|(n, latest)| {
                *n += 1;
                *latest = None;
            });
        }
    }

    async fn listen(self, pool: PgPool, shutdown: CancellationToken) {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), u32::MAX);
        let mut failures = 0u32;
        loop {
            let connected = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => break,
                result = connected => match result {
                    Ok(l) => l,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "order notifications: cannot listen; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(backoff.delay(failures.min(16))) => continue,
                        }
                    }
                },
            };
            failures = 0;
            self.inner.listening.send_replace(true);
            // Changes made while not listening were not heard.
            self.wake_all();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        self.inner.listening.send_replace(false);
                        return;
                    }
                    next = listener.try_recv() => match next {
                        Ok(Some(n)) => self.dispatch(n.payload()),
                        // The connection was lost and re-established: anything may have been missed.
                        Ok(None) => self.wake_all(),
                        Err(e) => {
                            tracing::warn!(error = %e, "order notifications: the listener failed; reconnecting");
                            self.inner.listening.send_replace(false);
                            self.wake_all();
                            break;
                        }
                    },
                }
            }
        }
        self.inner.listening.send_replace(false);
    }
}

/// One watcher's view of one order's changes. Unsubscribes when dropped.
pub struct Subscription {
    hub: Arc<Inner>,
    key: Key,
    rx: Option<watch::Receiver<Signal>>,
}

impl Subscription {
    /// Resolves at the next change (or possible change) of the order, with the change when the
    /// announcement carried it. Changes announced while nobody waited are coalesced: the latest
    /// one is returned, and [`OrderChange::apply`] tells whether it follows what was seen.
    pub async fn changed(&mut self) -> Option<Arc<OrderChange>> {
        let rx = self.rx.as_mut().expect("present until dropped");
        // The sender lives in the hub's map while this receiver exists, so this cannot fail.
        let _ = rx.changed().await;
        rx.borrow_and_update().1.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut orders = self.hub.orders.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.rx.take());
        if orders.get(&self.key).is_some_and(|tx| tx.receiver_count() == 0) {
            orders.remove(&self.key);
        }
    }
}

/// Announcements waiting to be sent, at most; beyond that they are dropped (and watchers see the
/// changes at their periodic re-read).
const ANNOUNCE_QUEUE: usize = 10_000;
/// Announcements sent in one round trip, at most.
const ANNOUNCE_BATCH: usize = 500;

/// Sends order announcements in batches: every announcement queued while the previous batch
/// was on its way goes in the next, in one round trip and one short asynchronous commit. During a
/// burst of callbacks this keeps the notifications from queueing for database connections
/// behind the callbacks themselves, and a callback's answer need not wait for its notification.
/// Cheap to clone; its task ends when the last clone is dropped, after sending what was queued.
#[derive(Clone)]
pub struct Announcer {
    tx: mpsc::Sender<Announcement>,
}

impl Announcer {
    pub fn start(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(ANNOUNCE_QUEUE);
        tokio::spawn(Self::run(pool, rx));
        Self { tx }
    }

    /// Queues an announcement of a committed change.
    pub fn announce(&self, announcement: Announcement) {
        if let Err(e) = self.tx.try_send(announcement) {
            tracing::warn!(error = %e, "an order change was not announced; its watchers see it at their next re-read");
        }
    }

    async fn run(pool: PgPool, mut rx: mpsc::Receiver<Announcement>) {
        // A connection of its own, as the hub's listener has: announcements never wait behind
        // the pool's other users, and the pool can close without waiting for this task.
        let mut conn: Option<PgConnection> = None;
        let mut batch = Vec::with_capacity(ANNOUNCE_BATCH);
        while rx.recv_many(&mut batch, ANNOUNCE_BATCH).await > 0 {
            let sent = match conn.as_mut() {
                Some(c) => store::announce(c, &batch).await,
                None => match PgConnection::connect_with(&pool.connect_options()).await {
                    Ok(mut c) => {
                        let sent = store::announce(&mut c, &batch).await;
                        conn = Some(c);
                        sent
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = sent {
                // The changes are committed; watchers see them at their next periodic re-read.
                tracing::warn!(error = %e, changes = batch.len(), "announcing order changes failed");
                conn = None;
            }
            batch.clear();
        }
    }
}
