//! What the area's two follow-ups share: the status follow-up (reconciler.rs) delivers desired
//! statuses, the SIP-table refresh (sip_refresh.rs) syncs a customer's table when the CRM's
//! trigger asks. Both keep their requests in PostgreSQL (store.rs, [`FollowUp`]), and this loop
//! claims the due ones with a lease, works them, and at shutdown gives back what it still holds,
//! so the next start (or another replica) takes them at once.

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;

use super::store::{self, Claimed, FollowUp, Lease};
use crate::{ops::retry::Backoff, platform::AppState};

/// How long a delivery holds a customer's row: the vendor budget, plus a margin for finishing
/// the row. A crashed holder's rows are free after it (at once when its process is known gone).
pub const LEASE: Duration = Duration::from_secs(150);
/// Retry delays after failed deliveries: 0.5 s doubling to 5 minutes, jittered.
pub const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(300), u32::MAX);
/// Retry delays of a request only an operator can unblock (credentials, a tenant whose trigger is
/// gone or switched off): 1 minute doubling to 1 hour.
pub const PARKED: Backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(3600), u32::MAX);
/// A request that only an operator could unblock, still undelivered this long after it was
/// recorded, is given up (`rejected`).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the worker looks for due requests.
pub const POLL: Duration = Duration::from_millis(500);
/// Requests claimed per poll.
const BATCH: i64 = 32;

/// This process's lease.
pub fn lease(state: &AppState) -> Lease {
    Lease { length: LEASE, owner: state.instance }
}

/// The delay before the next try of a request that failed `attempts` times (`operator`: only an
/// operator can fix what failed).
pub fn retry_in(attempts: i32, operator: bool) -> Duration {
    let retry = u32::try_from(attempts).unwrap_or(1).max(1);
    if operator { PARKED.delay(retry) } else { RETRY.delay(retry) }
}

/// Runs `work` on every due request of `D`'s table until the server shuts down. `what` names the
/// follow-up in logs.
pub fn spawn<D, F, Fut>(state: AppState, what: &'static str, work: F) -> JoinHandle<()>
where
    D: FollowUp,
    F: Fn(AppState, Claimed<D>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let claimed = match store::claim_due::<D>(&state.db, BATCH, lease(&state)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: claiming due requests failed");
                    continue;
                }
            };
            if claimed.is_empty() {
                continue;
            }
            let run = futures::future::join_all(claimed.iter().cloned().map(|c| work(state.clone(), c)));
            tokio::select! {
                _ = run => {}
                _ = state.shutdown.cancelled() => {
                    // Only rows this worker still holds (by their tokens) are given back.
                    for c in &claimed {
                        let released = async { store::release(&mut *state.db.acquire().await?, c, Duration::ZERO, "").await };
                        if let Err(e) = released.await {
                            tracing::warn!(error = %e, "{what}: releasing a request at shutdown failed");
                        }
                    }
                    return;
                }
            }
        }
    })
}

/// Logs a holder whose lease ran out (a stalled process): another holds the row, nothing recorded.
pub fn lease_lost<D: FollowUp>(what: &str, claimed: &Claimed<D>) {
    tracing::warn!(
        tenant = %claimed.tenant, account = %claimed.account_number, generation = claimed.generation,
        "{what}: this delivery's lease ran out and another holds the row; nothing recorded"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::provider::DELIVERY_BUDGET;

    #[test]
    fn the_lease_outlasts_the_delivery_budget_with_a_margin() {
        assert!(LEASE >= DELIVERY_BUDGET + Duration::from_secs(30));
    }

    #[test]
    fn parked_requests_back_off_to_an_hour() {
        assert_eq!(PARKED.ceiling(1), Duration::from_secs(60));
        assert!(PARKED.delay(3) >= Duration::from_secs(120));
        assert_eq!(PARKED.ceiling(40), Duration::from_secs(3600));
        assert!(retry_in(1, false) <= Duration::from_millis(500));
    }
}
