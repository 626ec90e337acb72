//! Periodic housekeeping (purging expired rows) that runs until the server shuts down.

use std::{fmt::Display, future::Future, time::Duration};

use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::state::AppState;

/// The period of hourly housekeeping (purging expired keys and exports).
pub const HOURLY: Duration = Duration::from_secs(3600);

/// Runs `job` now and then every `every` until shutdown. `what` names it in logs; a failed run
/// is logged and retried at the next tick.
pub fn spawn<F, Fut, E>(state: &AppState, what: &'static str, every: Duration, job: F) -> JoinHandle<()>
where
    F: Fn(PgPool) -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, E>> + Send,
    E: Display,
{
    let (db, shutdown) = (state.db.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        // After a slow run (a busy database), wait a full period rather than run back to back.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => match job(db.clone()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(what, rows = n, "housekeeping"),
                    Err(e) => tracing::warn!(what, error = %e, "housekeeping failed"),
                },
            }
        }
    })
}
