//! The account area's PostgreSQL repositories: the CRM's custom SIP table, and the desired
//! statuses of the status follow-up (migrations/0002_account.sql).

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, types::Json};

use super::{
    provider::DesiredStatus,
    settings::SipTable,
    sip_sync::{Fields, StoredRow, SyncPlan},
};

// ---- the custom SIP table ----

/// Serialises every writer of one customer's SIP table (syncs, deletes) until the transaction
/// ends, on any replica: a transaction-scoped advisory lock keyed by tenant and account number.
pub async fn lock_customer(conn: &mut PgConnection, tenant: &str, number: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key(tenant, number)).execute(conn).await?;
    Ok(())
}

/// A 64-bit advisory-lock key for one customer; a collision only serialises two customers.
fn lock_key(tenant: &str, number: &str) -> i64 {
    let digest =
        Sha256::new().chain_update(b"account-sip\0").chain_update(tenant).chain_update(b"\0").chain_update(number);
    let bytes: [u8; 8] = digest.finalize()[..8].try_into().expect("8 bytes");
    i64::from_be_bytes(bytes)
}

/// A customer's rows, by SIP user name.
pub async fn rows(conn: &mut PgConnection, tenant: &str, number: &str) -> Result<Vec<StoredRow>, sqlx::Error> {
    let rows: Vec<(String, Json<Fields>)> = sqlx::query_as(
        "SELECT sip_username, fields FROM account_sip_rows
          WHERE tenant = $1 AND account_number = $2 ORDER BY sip_username",
    )
    .bind(tenant)
    .bind(number)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(sip_username, Json(fields))| StoredRow { sip_username, fields }).collect())
}

/// Writes a plan: one statement for the upserts, one for the deletes.
pub async fn apply(
    conn: &mut PgConnection,
    tenant: &str,
    number: &str,
    plan: &SyncPlan,
    table: &SipTable,
) -> Result<(), sqlx::Error> {
    let upserts = plan.added.iter().chain(&plan.updated);
    let (keys, fields): (Vec<String>, Vec<String>) = upserts
        .map(|line| {
            let json = serde_json::to_string(&super::sip_sync::row_of(line, table)).expect("a map of text is JSON");
            (line.sip_username.clone(), json)
        })
        .unzip();
    if !keys.is_empty() {
        sqlx::query(
            "INSERT INTO account_sip_rows (tenant, account_number, sip_username, fields)
             SELECT $1, $2, k, f::jsonb FROM UNNEST($3::text[], $4::text[]) AS u(k, f)
             ON CONFLICT (tenant, account_number, sip_username)
             DO UPDATE SET fields = EXCLUDED.fields, synced_at = now()",
        )
        .bind(tenant)
        .bind(number)
        .bind(&keys)
        .bind(&fields)
        .execute(&mut *conn)
        .await?;
    }
    let deleted: Vec<&str> = plan.deleted.iter().map(|r| r.sip_username.as_str()).collect();
    if !deleted.is_empty() {
        sqlx::query(
            "DELETE FROM account_sip_rows WHERE tenant = $1 AND account_number = $2 AND sip_username = ANY($3)",
        )
        .bind(tenant)
        .bind(number)
        .bind(&deleted)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes a customer's rows; returns how many.
pub async fn delete_rows(conn: &mut PgConnection, tenant: &str, number: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM account_sip_rows WHERE tenant = $1 AND account_number = $2")
        .bind(tenant)
        .bind(number)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

// ---- desired statuses ----

/// A desired status claimed for delivery: the claimer holds its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub tenant: String,
    pub account_number: String,
    pub desired: DesiredStatus,
    pub generation: i64,
    /// Delivery attempts so far, this one included.
    pub attempts: i32,
}

/// A desired status as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub desired: DesiredStatus,
    pub generation: i64,
    /// `pending`, `applied` or `rejected`.
    pub state: String,
    pub attempts: i32,
    pub last_error: String,
}

type ClaimRow = (String, String, String, i64, i32);

fn claimed(row: ClaimRow) -> Option<Claimed> {
    let (tenant, account_number, desired, generation, attempts) = row;
    Some(Claimed { tenant, account_number, desired: DesiredStatus::parse(&desired)?, generation, attempts })
}

/// Stores `desired` as the customer's latest desired status, pending delivery, and claims its
/// delivery in the same statement unless another delivery holds the lease (that delivery then
/// delivers this newer desire when it finishes). A delivery of an older generation in flight can
/// never mark this one applied.
pub async fn record_desired(
    pool: &PgPool,
    tenant: &str,
    number: &str,
    desired: DesiredStatus,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let (generation, attempts, claimed): (i64, i32, bool) = sqlx::query_as(
        "INSERT INTO account_status_intents
                (tenant, account_number, desired, generation, state, attempts, lease_until)
         VALUES ($1, $2, $3, 1, 'pending', 1, now() + make_interval(secs => $4))
         ON CONFLICT (tenant, account_number) DO UPDATE
            SET desired = EXCLUDED.desired, generation = account_status_intents.generation + 1,
                state = 'pending', next_attempt_at = now(), last_error = '', updated_at = now(),
                attempts = CASE WHEN account_status_intents.lease_until IS NULL
                                  OR account_status_intents.lease_until < now() THEN 1 ELSE 0 END,
                lease_until = CASE WHEN account_status_intents.lease_until IS NULL
                                     OR account_status_intents.lease_until < now()
                                   THEN EXCLUDED.lease_until ELSE account_status_intents.lease_until END
         RETURNING generation, attempts, lease_until = now() + make_interval(secs => $4)",
    )
    .bind(tenant)
    .bind(number)
    .bind(desired.as_str())
    .bind(lease.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(claimed.then(|| Claimed {
        tenant: tenant.to_owned(),
        account_number: number.to_owned(),
        desired,
        generation,
        attempts,
    }))
}

/// Claims one customer's pending status for delivery now, unless someone else holds its lease.
pub async fn claim_one(
    pool: &PgPool,
    tenant: &str,
    number: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let row: Option<ClaimRow> = sqlx::query_as(
        "UPDATE account_status_intents
            SET lease_until = now() + make_interval(secs => $3), attempts = attempts + 1
          WHERE tenant = $1 AND account_number = $2 AND state = 'pending'
            AND (lease_until IS NULL OR lease_until < now())
         RETURNING tenant, account_number, desired, generation, attempts",
    )
    .bind(tenant)
    .bind(number)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(claimed))
}

/// Claims up to `limit` pending statuses that are due, skipping rows another replica is
/// claiming at this moment (FOR UPDATE SKIP LOCKED) or holds the lease of.
pub async fn claim_due(pool: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "UPDATE account_status_intents AS i
            SET lease_until = now() + make_interval(secs => $2), attempts = i.attempts + 1
           FROM (SELECT tenant, account_number FROM account_status_intents
                  WHERE state = 'pending' AND next_attempt_at <= now()
                    AND (lease_until IS NULL OR lease_until < now())
                  ORDER BY next_attempt_at
                  LIMIT $1
                  FOR UPDATE SKIP LOCKED) AS due
          WHERE i.tenant = due.tenant AND i.account_number = due.account_number
         RETURNING i.tenant, i.account_number, i.desired, i.generation, i.attempts",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(claimed).collect())
}

/// Marks a claimed status applied, if it is still the latest. `false`: a newer desired status
/// arrived meanwhile; the lease is released so that it is delivered next.
pub async fn finish_applied(pool: &PgPool, c: &Claimed) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE account_status_intents
            SET state = 'applied', applied_at = now(), lease_until = NULL, last_error = '', updated_at = now()
          WHERE tenant = $1 AND account_number = $2 AND generation = $3",
    )
    .bind(&c.tenant)
    .bind(&c.account_number)
    .bind(c.generation)
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    release(pool, c, Duration::ZERO, "").await?;
    Ok(false)
}

/// Gives a claimed status back, pending, to be tried again after `retry_in`.
pub async fn release(pool: &PgPool, c: &Claimed, retry_in: Duration, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE account_status_intents
            SET lease_until = NULL, next_attempt_at = now() + make_interval(secs => $3),
                last_error = CASE WHEN $4::text = '' THEN last_error ELSE $4::text END, updated_at = now()
          WHERE tenant = $1 AND account_number = $2",
    )
    .bind(&c.tenant)
    .bind(&c.account_number)
    .bind(retry_in.as_secs_f64())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The vendor refused the status for good (e.g. the account is gone): stop retrying it, unless a
/// newer desired status arrived meanwhile.
pub async fn finish_rejected(pool: &PgPool, c: &Claimed, error: &str) -> Result<(), sqlx::Error> {
    let done = sqlx::query(
        "UPDATE account_status_intents
            SET state = 'rejected', lease_until = NULL, last_error = $4, updated_at = now()
          WHERE tenant = $1 AND account_number = $2 AND generation = $3",
    )
    .bind(&c.tenant)
    .bind(&c.account_number)
    .bind(c.generation)
    .bind(error)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        release(pool, c, Duration::ZERO, "").await?;
    }
    Ok(())
}

/// The stored desired status of a customer.
pub async fn intent(pool: &PgPool, tenant: &str, number: &str) -> Result<Option<Intent>, sqlx::Error> {
    let row: Option<(String, i64, String, i32, String)> = sqlx::query_as(
        "SELECT desired, generation, state, attempts, last_error FROM account_status_intents
          WHERE tenant = $1 AND account_number = $2",
    )
    .bind(tenant)
    .bind(number)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(desired, generation, state, attempts, last_error)| {
        Some(Intent { desired: DesiredStatus::parse(&desired)?, generation, state, attempts, last_error })
    }))
}

/// Forgets a deleted account's desired status.
pub async fn delete_intent(conn: &mut PgConnection, tenant: &str, number: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM account_status_intents WHERE tenant = $1 AND account_number = $2")
        .bind(tenant)
        .bind(number)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_per_customer_and_tenant() {
        assert_ne!(lock_key("a", "1001"), lock_key("a", "1002"));
        assert_ne!(lock_key("a", "1001"), lock_key("b", "1001"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(lock_key("ab", "c"), lock_key("a", "bc"));
        assert_eq!(lock_key("a", "1"), lock_key("a", "1"));
    }
}
