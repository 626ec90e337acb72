//! This server process, as the database knows it: a random instance key on which the process
//! holds a session-level advisory lock for as long as it lives. PostgreSQL releases the lock the
//! moment the process's connection goes (`kill -9`, a crash, a lost host), so another process can
//! tell at once that a lease this one held belongs to nobody (`patchbay_instance_alive`, in
//! migrations/0007), rather than wait for the lease to run out.
//!
//! The lock lives on a connection of its own, outside the pool; a watchdog checks it every few
//! seconds and takes the lock again on a new connection if it was lost (say, PostgreSQL
//! restarted). While it is lost, others may take this process's in-progress claims over: those
//! claims could not have recorded their outcome without the database either.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

/// How often the watchdog checks the lock's connection.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// This process's instance key and the task that keeps its lock.
pub struct Instance {
    pub key: i64,
    stop: CancellationToken,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Instance {
    /// Let go without `close` (a test's throwaway database): the lock goes with its watchdog.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Instance {
    /// Takes a fresh instance key's lock on a connection of its own to `url`.
    pub async fn register(url: &str) -> Result<Self, sqlx::Error> {
        let (key, conn) = loop {
            let key: i64 = rand::random();
            let mut conn = PgConnection::connect(url).await?;
            if lock(&mut conn, key).await? {
                break (key, conn);
            }
        };
        let stop = CancellationToken::new();
        let watchdog = Some(tokio::spawn(watch(url.to_owned(), key, conn, stop.clone())));
        tracing::debug!(instance = key, "instance lock taken");
        Ok(Self { key, stop, watchdog })
    }

    /// Releases the lock (the process is stopping cleanly).
    pub async fn close(mut self) {
        self.stop.cancel();
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.await;
        }
    }
}

async fn lock(conn: &mut PgConnection, key: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(conn).await
}

async fn watch(url: String, key: i64, mut conn: PgConnection, stop: CancellationToken) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if sqlx::query("SELECT 1").execute(&mut conn).await.is_ok() {
            continue;
        }
        tracing::error!(
            instance = key,
            "lost the instance lock's connection: this process's leases may be taken over until it is back"
        );
        match PgConnection::connect(&url).await {
            Ok(mut fresh) => match lock(&mut fresh, key).await {
                Ok(true) => {
                    tracing::info!(instance = key, "instance lock taken again");
                    conn = fresh;
                }
                Ok(false) => tracing::error!(instance = key, "the instance key is locked by another connection"),
                Err(e) => tracing::error!(instance = key, error = %e, "taking the instance lock again failed"),
            },
            Err(e) => tracing::warn!(instance = key, error = %e, "reconnecting for the instance lock failed"),
        }
    }
    let _ = conn.close().await;
}
