//! The order watch hub: one PostgreSQL `LISTEN` per process, fanned out to the WatchOrder
//! streams of that process.
//!
//! Every change to an order is announced with `NOTIFY` in the transaction that makes it (see
//! [`super::store`]), whichever replica makes it; each replica's hub hears it and wakes the
//! watchers of that order, which re-read the order. A watcher subscribes before it reads the
//! order the first time, and the hub is listening before any subscription is handed out, so no
//! change falls between the read and the subscription. If the listening connection drops,
//! notifications may have been missed, so every watcher is woken to re-read.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::store::CHANNEL;
use crate::ops::retry::Backoff;

type Key = (String, String);

/// Fans out order notifications to watchers. Cheap to clone.
#[derive(Clone)]
pub struct OrderHub {
    inner: Arc<Inner>,
}

struct Inner {
    /// (tenant, order id) -> a counter bumped at each change; watchers wait for it to move.
    orders: Mutex<HashMap<Key, watch::Sender<u64>>>,
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
            orders.entry(key.clone()).or_insert_with(|| watch::channel(0).0).subscribe()
        };
        Ok(Subscription { hub: Arc::clone(&self.inner), key, rx: Some(rx) })
    }

    /// Watchers now, across all orders (for tests and metrics).
    pub fn watched_orders(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, watch::Sender<u64>>> {
        self.inner.orders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dispatch(&self, payload: &str) {
        let Some((tenant, order_id)) = payload.split_once(' ') else {
            tracing::warn!(payload, "ignoring a malformed order notification");
            return;
        };
        let orders = self.lock();
        if let Some(tx) = orders.get(&(tenant.to_owned(), order_id.to_owned())) {
            tx.send_modify(|n| *n += 1);
        }
    }

    fn wake_all(&self) {
        for tx in self.lock().values() {
            tx.send_modify(|n| *n += 1);
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
    rx: Option<watch::Receiver<u64>>,
}

impl Subscription {
    /// Resolves at the next change (or possible change) of the order.
    pub async fn changed(&mut self) {
        let rx = self.rx.as_mut().expect("present until dropped");
        // The sender lives in the hub's map while this receiver exists, so this cannot fail.
        let _ = rx.changed().await;
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
