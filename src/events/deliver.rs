//! The webhook delivery worker: sends the outbox's due deliveries, signed per Standard Webhooks,
//! and records each attempt. At-least-once: a delivery is marked delivered only after a 2xx, and
//! its `webhook-id` stays the same across attempts, so receivers dedupe.
//!
//! Every replica runs one; `FOR UPDATE SKIP LOCKED` under a lease gives each delivery to one at a
//! time. A commit in this process wakes its worker at once; the others poll every [`POLL`].
//! Failed attempts are retried on the schedule Standard Webhooks suggests (5 s, 5 min, 30 min,
//! 2 h, 5 h, 10 h, 10 h: about 27 h in all), then the delivery is `failed`, for an operator to
//! re-send (RegistryService.ResendDelivery).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::{
    platform::AppState,
    store::outbox::{self, Due},
};

/// How often the worker looks for due deliveries without being woken.
pub const POLL: Duration = Duration::from_secs(1);
/// Deliveries claimed at once, and sent at once of those.
const BATCH: i64 = 64;
const IN_FLIGHT: usize = 32;
/// One attempt's limit; the lease covers a whole batch of them with a margin.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_secs(60);
/// Delays after the 1st, 2nd, ... failed attempt; after the last, the delivery has failed.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// Bytes of a receiver's answer kept in `last_error`.
const KEPT_ANSWER: usize = 200;

/// The delay before the next attempt after `attempts` failed ones (jittered by up to 10%), or
/// `None` when the schedule is over.
pub fn retry_in(attempts: usize) -> Option<Duration> {
    let base = *SCHEDULE.get(attempts.checked_sub(1)?)?;
    Some(base.mul_f64(1.0 + rand::random::<f64>() * 0.1))
}

/// The worker, until shutdown.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent(concat!("patchbay-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with default TLS settings builds");
    tokio::spawn(async move {
        loop {
            let claimed = match outbox::claim_due(&state.db, BATCH, LEASE, state.instance).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: claiming due deliveries failed");
                    Vec::new()
                }
            };
            let full = claimed.len() as i64 == BATCH;
            if !claimed.is_empty() {
                send_batch(&state, &http, claimed).await;
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = state.outbox.woken() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    })
}

/// How one attempt went.
enum Attempt {
    Delivered(u16),
    Failed { status: Option<u16>, error: String, retry: bool },
}

async fn send_batch(state: &AppState, http: &reqwest::Client, batch: Vec<Due>) {
    let results: Vec<(Due, Attempt, Duration)> = futures::stream::iter(batch)
        .map(|due| async move {
            let started = std::time::Instant::now();
            let attempt = send(state, http, &due).await;
            (due, attempt, started.elapsed())
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut delivered = Vec::new();
    for (due, attempt, took) in results {
        match attempt {
            Attempt::Delivered(status) => {
                state.metrics.webhook_attempt("delivered", took);
                delivered.push((due.id, status));
            }
            Attempt::Failed { status, error, retry } => {
                let attempts = usize::try_from(due.attempts).unwrap_or(0) + 1;
                let next = if retry { retry_in(attempts) } else { None };
                state.metrics.webhook_attempt(if next.is_some() { "retry" } else { "failed" }, took);
                match next {
                    Some(d) => tracing::info!(
                        tenant = %due.tenant, endpoint = %due.endpoint, event = %due.event_id, attempts,
                        retry_in_s = d.as_secs(), %error, "webhook not delivered yet"
                    ),
                    None => tracing::warn!(
                        tenant = %due.tenant, endpoint = %due.endpoint, event = %due.event_id, attempts, %error,
                        "webhook delivery failed for good; RegistryService.ResendDelivery sends it again"
                    ),
                }
                if let Err(e) = outbox::attempt_failed(&state.db, due.id, state.instance, next, status, &error).await {
                    tracing::warn!(error = %e, "webhooks: recording a failed attempt failed");
                }
            }
        }
    }
    if let Err(e) = outbox::delivered(&state.db, &delivered, state.instance).await {
        // The lease runs out and they are sent again: at-least-once.
        tracing::warn!(error = %e, "webhooks: recording delivered attempts failed");
    }
}

/// The `webhook-id` of an event.
pub fn webhook_id(event: &uuid::Uuid) -> String {
    format!("msg_{}", event.simple())
}

async fn send(state: &AppState, http: &reqwest::Client, due: &Due) -> Attempt {
    let endpoint = state.registry.get(&due.tenant).and_then(|t| {
        let e = t.events.endpoint(&due.endpoint)?;
        Some((e.url.clone(), e.key.clone()))
    });
    let Some((url, key)) = endpoint else {
        return Attempt::Failed {
            status: None,
            error: format!("the endpoint `{}` is no longer in the tenant's file", due.endpoint),
            retry: false,
        };
    };
    let id = webhook_id(&due.event_id);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let signature = key.sign(&id, now, due.payload.as_bytes());
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(due.payload.clone())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
        Ok(r) => {
            let status = r.status().as_u16();
            let answer = r.text().await.unwrap_or_default();
            let answer = crate::ops::text::one_line(&answer);
            let kept: String = answer.chars().take(KEPT_ANSWER).collect();
            Attempt::Failed { status: Some(status), error: format!("HTTP {status}: {kept}"), retry: true }
        }
        Err(e) => {
            let why = if e.is_timeout() {
                format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                "the request failed".to_owned()
            };
            Attempt::Failed { status: None, error: why, retry: true }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_schedule_lasts_more_than_a_day_then_gives_up() {
        let total: Duration = SCHEDULE.iter().sum();
        assert!(total >= Duration::from_secs(24 * 3600), "{total:?}");
        assert!(retry_in(1).unwrap() >= Duration::from_secs(5) && retry_in(1).unwrap() <= Duration::from_millis(5500));
        assert!(retry_in(7).is_some());
        assert_eq!(retry_in(8), None);
        assert_eq!(retry_in(0), None);
    }
}
