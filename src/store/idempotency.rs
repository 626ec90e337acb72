//! Idempotency keys: a mutating call with a `request_id` runs once; a retry with the same id and
//! the same request gets the stored answer, a retry with the same id and another request is
//! refused. Keys are kept 24 hours.
//!
//! The first call claims the key (`in_progress`) before doing anything, so two retries racing
//! each other cannot both run. A claim has a lease and an owner (the claiming process's instance
//! key): if the process dies mid-call, the key is taken over at once, since the dead owner no
//! longer holds its instance lock; the lease covers the rest (an owner of an older version). A failed call releases its key, so the caller may retry
//! after fixing the cause.
//!
//! A long job keyed by request_id (the dialer's lead export) uses the same key as a lease only:
//! it claims with its own lease, [`renew`]s it while it runs and [`end_lease`]s it at the end,
//! so that the same request may resume at once while another request with that id is refused.

use std::time::Duration;

use sqlx::PgPool;

/// How long a finished key answers retries.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a claim holds before another call may take the key over.
pub const LEASE: Duration = Duration::from_secs(300);

/// What claiming a key found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the call, then [`complete`] or [`release`].
    Owned,
    /// The same request already ran: this is its stored answer.
    Done(Vec<u8>),
    /// The same request is running now (another retry got there first).
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// The scope of one key.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub tenant: &'a str,
    pub method: &'a str,
    pub request_id: &'a str,
}

/// Claims `key` for a request whose hash is `request_hash`.
/// `owner` is the claiming process's instance key ([`super::instance`]): a claim whose owner is
/// gone is taken over at once, whatever its lease says.
pub async fn claim(pool: &PgPool, key: Key<'_>, request_hash: &[u8], owner: i64) -> Result<Claim, sqlx::Error> {
    claim_leased(pool, key, request_hash, LEASE, owner).await
}

/// [`claim`] with a lease of its own length (a job that renews it holds it for less).
pub async fn claim_leased(
    pool: &PgPool,
    key: Key<'_>,
    request_hash: &[u8],
    lease: Duration,
    owner: i64,
) -> Result<Claim, sqlx::Error> {
    // A key released between our insert and our read is claimed again; twice in a row is
    // a caller hammering one id, which may wait for its retry like any in-progress call.
    for _ in 0..2 {
        if let Some(claim) = try_claim(pool, key, request_hash, lease, owner).await? {
            return Ok(claim);
        }
    }
    Ok(Claim::InProgress)
}

async fn try_claim(
    pool: &PgPool,
    key: Key<'_>,
    request_hash: &[u8],
    lease: Duration,
    owner: i64,
) -> Result<Option<Claim>, sqlx::Error> {
    // Insert, or take over a row that expired or whose lease ran out; otherwise read it.
    let taken: Option<bool> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (tenant, method, request_id, request_hash, state, lease_until, expires_at, owner)
         VALUES ($1, $2, $3, $4, 'in_progress', now() + make_interval(secs => $5), now() + make_interval(secs => $6), $7)
         ON CONFLICT (tenant, method, request_id) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, state = 'in_progress', response = NULL,
                lease_until = EXCLUDED.lease_until, expires_at = EXCLUDED.expires_at, owner = EXCLUDED.owner,
                -- An expired key starts a new life (a domain store drops what it kept from before).
                created_at = CASE WHEN idempotency_keys.expires_at < now() THEN now()
                                  ELSE idempotency_keys.created_at END
          WHERE idempotency_keys.expires_at < now()
             OR (idempotency_keys.state = 'in_progress' AND idempotency_keys.request_hash = EXCLUDED.request_hash
                 AND (idempotency_keys.lease_until < now()
                      -- Its owner died (or lost its database): nobody is running it.
                      OR (idempotency_keys.owner IS NOT NULL AND idempotency_keys.owner <> EXCLUDED.owner
                          AND NOT patchbay_instance_alive(idempotency_keys.owner))))
         RETURNING true",
    )
    .bind(key.tenant)
    .bind(key.method)
    .bind(key.request_id)
    .bind(request_hash)
    .bind(lease.as_secs_f64())
    .bind(RETENTION.as_secs_f64())
    .bind(owner)
    .fetch_optional(pool)
    .await?;
    if taken.is_some() {
        return Ok(Some(Claim::Owned));
    }
    let row: Option<(Vec<u8>, String, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT request_hash, state, response FROM idempotency_keys
          WHERE tenant = $1 AND method = $2 AND request_id = $3",
    )
    .bind(key.tenant)
    .bind(key.method)
    .bind(key.request_id)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => None,
        Some((hash, _, _)) if hash != request_hash => Some(Claim::Mismatch),
        Some((_, state, Some(response))) if state == "done" => Some(Claim::Done(response)),
        Some(_) => Some(Claim::InProgress),
    })
}

/// Stores the answer of an owned key.
pub async fn complete(pool: &PgPool, key: Key<'_>, response: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', response = $4
          WHERE tenant = $1 AND method = $2 AND request_id = $3",
    )
    .bind(key.tenant)
    .bind(key.method)
    .bind(key.request_id)
    .bind(response)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives up an owned key after a failed call, so a corrected retry may run.
pub async fn release(pool: &PgPool, key: Key<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE tenant = $1 AND method = $2 AND request_id = $3 AND state = 'in_progress'",
    )
    .bind(key.tenant)
    .bind(key.method)
    .bind(key.request_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Extends the lease of an owned key by `lease` from now.
pub async fn renew(pool: &PgPool, key: Key<'_>, lease: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET lease_until = now() + make_interval(secs => $4)
          WHERE tenant = $1 AND method = $2 AND request_id = $3 AND state = 'in_progress'",
    )
    .bind(key.tenant)
    .bind(key.method)
    .bind(key.request_id)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends an owned key's lease but keeps its request: the same request may take the key over at
/// once (and resume), another request with this id is still refused.
pub async fn end_lease(pool: &PgPool, key: Key<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET lease_until = now() - interval '1 microsecond'
          WHERE tenant = $1 AND method = $2 AND request_id = $3 AND state = 'in_progress'",
    )
    .bind(key.tenant)
    .bind(key.method)
    .bind(key.request_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes expired keys (and, by cascade, what a domain store keeps under them); returns how many.
pub async fn purge_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < now()").execute(pool).await?.rows_affected())
}
