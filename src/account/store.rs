//! The account area's PostgreSQL repositories: the CRM's custom SIP table, and the two
//! follow-ups' queues: desired statuses and SIP-table refreshes (migrations/0002, 0010).

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

use super::{
    provider::DesiredStatus,
    settings::SipTable,
    sip_sync::{Fields, StoredRow, SyncMode, SyncPlan},
};

// ---- the custom SIP table ----

/// How long a writer waits for another writer of the same customer's SIP table. Writers hold the
/// lock for a few statements only (never across a vendor call), so a longer wait means trouble.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Serialises every writer of one customer's SIP table (syncs, deletes) until the transaction
/// ends, on any replica: a transaction-scoped advisory lock keyed by tenant and account number.
/// Waits at most [`LOCK_WAIT`]; then fails with [`is_lock_timeout`].
pub async fn lock_customer(conn: &mut PgConnection, tenant: &str, number: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", LOCK_WAIT.as_millis()))
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key(tenant, number)).execute(conn).await?;
    Ok(())
}

/// Whether `e` is [`lock_customer`] giving up after [`LOCK_WAIT`].
pub fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "55P03")
}

/// A ticket ordering the writers of SIP tables (migrations/0005): a sync takes one before it reads
/// the vendor, a delete after the vendor deleted the account.
pub async fn sip_ticket(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT nextval('account_sip_ticket')").fetch_one(pool).await
}

/// Under the customer's lock: whether a writer holding a newer ticket than `ticket` already wrote
/// the customer's table (so what `ticket`'s holder read from the vendor is older than the table).
pub async fn written_since(
    conn: &mut PgConnection,
    tenant: &str,
    number: &str,
    ticket: i64,
) -> Result<bool, sqlx::Error> {
    let newer: Option<bool> =
        sqlx::query_scalar("SELECT ticket > $3 FROM account_sip_tables WHERE tenant = $1 AND account_number = $2")
            .bind(tenant)
            .bind(number)
            .bind(ticket)
            .fetch_optional(conn)
            .await?;
    Ok(newer.unwrap_or(false))
}

/// Under the customer's lock: records that `ticket`'s holder wrote the customer's table.
pub async fn record_write(conn: &mut PgConnection, tenant: &str, number: &str, ticket: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_sip_tables (tenant, account_number, ticket) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, account_number) DO UPDATE
            SET ticket = GREATEST(account_sip_tables.ticket, EXCLUDED.ticket), written_at = now()",
    )
    .bind(tenant)
    .bind(number)
    .bind(ticket)
    .execute(conn)
    .await?;
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

/// A page of a customer's rows, by SIP user name: at most `limit` after `after`.
pub async fn rows_after(
    conn: &mut PgConnection,
    tenant: &str,
    number: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredRow>, sqlx::Error> {
    let rows: Vec<(String, Json<Fields>)> = sqlx::query_as(
        "SELECT sip_username, fields FROM account_sip_rows
          WHERE tenant = $1 AND account_number = $2 AND ($3::text IS NULL OR sip_username > $3)
          ORDER BY sip_username LIMIT $4",
    )
    .bind(tenant)
    .bind(number)
    .bind(after)
    .bind(limit)
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

// ---- the follow-ups: desired statuses and SIP-table refreshes ----

/// What a follow-up row asks the vendor side for, and the table such rows are kept in: one row per
/// customer, its latest request, delivered under a lease until it is done (migrations/0002, 0010).
/// The status follow-up (desired statuses) and the SIP-table refresh share these statements.
pub trait FollowUp: Copy + Send + Sync + std::fmt::Debug + 'static {
    const TABLE: &'static str;
    /// The column holding what is asked for.
    const COLUMN: &'static str;
    fn as_str(self) -> &'static str;
    fn parse(s: &str) -> Option<Self>;
}

impl FollowUp for DesiredStatus {
    const TABLE: &'static str = "account_status_intents";
    const COLUMN: &'static str = "desired";
    fn as_str(self) -> &'static str {
        DesiredStatus::as_str(self)
    }
    fn parse(s: &str) -> Option<Self> {
        DesiredStatus::parse(s)
    }
}

impl FollowUp for SyncMode {
    const TABLE: &'static str = "account_sip_refreshes";
    const COLUMN: &'static str = "mode";
    fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "FULL",
            SyncMode::AddOnly => "ADD_ONLY",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "FULL" => Some(SyncMode::Full),
            "ADD_ONLY" => Some(SyncMode::AddOnly),
            _ => None,
        }
    }
}

/// A follow-up request claimed for delivery (a desired status by default): the claimer holds its
/// lease, named by `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed<D = DesiredStatus> {
    pub tenant: String,
    pub account_number: String,
    /// What is asked for: the status, or the sync mode.
    pub desired: D,
    pub generation: i64,
    /// Delivery attempts so far, this one included.
    pub attempts: i32,
    /// The lease holder's token: only a call presenting it may finish or release the delivery.
    pub token: Uuid,
    /// How long ago this request was recorded (when it was claimed).
    pub age: Duration,
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
    /// Whether a delivery holds a live lease on it now.
    pub leased: bool,
    /// How long until the next attempt is due (zero when it is due now or not pending).
    pub due_in: Duration,
}

/// How finishing a delivery went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Recorded.
    Done,
    /// A newer request arrived meanwhile: the lease is given back, due at once.
    Newer,
    /// The lease ran out and someone else holds the row now: nothing was written.
    LeaseLost,
}

type ClaimRow = (String, String, String, i64, i32, Uuid, f64);

fn claimed<D: FollowUp>(row: ClaimRow) -> Option<Claimed<D>> {
    let (tenant, account_number, desired, generation, attempts, token, age) = row;
    Some(Claimed {
        tenant,
        account_number,
        desired: D::parse(&desired)?,
        generation,
        attempts,
        token,
        age: Duration::try_from_secs_f64(age).unwrap_or_default(),
    })
}

/// What a claim returns, in [`ClaimRow`] order (`prefix`: a table alias and dot, or nothing).
fn claim_returning<D: FollowUp>(prefix: &str) -> String {
    format!(
        "{prefix}tenant, {prefix}account_number, {prefix}{c}, generation, attempts, lease_token,
         GREATEST(EXTRACT(EPOCH FROM now() - desired_at), 0)::float8",
        c = D::COLUMN
    )
}

/// Stores `desired` as the customer's latest request, pending delivery, and claims its delivery
/// in the same statement unless another delivery holds the lease (that delivery then delivers
/// this newer request when it finishes). A delivery of an older generation in flight can never
/// mark this one done.
pub async fn record_desired<'c, D: FollowUp>(
    db: impl sqlx::PgExecutor<'c>,
    tenant: &str,
    number: &str,
    desired: D,
    lease: Lease,
) -> Result<Option<Claimed<D>>, sqlx::Error> {
    let token = Uuid::new_v4();
    let (t, c) = (D::TABLE, D::COLUMN);
    let free = lease_free(t, "$6");
    let (generation, attempts, claimed): (i64, i32, bool) = sqlx::query_as(&format!(
        "INSERT INTO {t}
                (tenant, account_number, {c}, generation, state, attempts, lease_until, lease_token, lease_owner,
                 desired_at)
         VALUES ($1, $2, $3, 1, 'pending', 1, now() + make_interval(secs => $4), $5, $6, now())
         ON CONFLICT (tenant, account_number) DO UPDATE
            SET {c} = EXCLUDED.{c}, generation = {t}.generation + 1,
                state = 'pending', next_attempt_at = now(), last_error = '', updated_at = now(), desired_at = now(),
                attempts = CASE WHEN {free} THEN 1 ELSE 0 END,
                lease_token = CASE WHEN {free} THEN EXCLUDED.lease_token ELSE {t}.lease_token END,
                lease_owner = CASE WHEN {free} THEN EXCLUDED.lease_owner ELSE {t}.lease_owner END,
                lease_until = CASE WHEN {free} THEN EXCLUDED.lease_until ELSE {t}.lease_until END
         RETURNING generation, attempts, lease_token IS NOT DISTINCT FROM $5"
    ))
    .bind(tenant)
    .bind(number)
    .bind(desired.as_str())
    .bind(lease.length.as_secs_f64())
    .bind(token)
    .bind(lease.owner)
    .fetch_one(db)
    .await?;
    Ok(claimed.then(|| Claimed {
        tenant: tenant.to_owned(),
        account_number: number.to_owned(),
        desired,
        generation,
        attempts,
        token,
        age: Duration::ZERO,
    }))
}

/// A delivery's lease: how long it holds, and the claiming process's instance key
/// (`store::instance`), so that the lease of a process that died is free at once.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub length: Duration,
    pub owner: i64,
}

/// SQL: `table`'s row has no live lease: none, one that ran out, or one whose owner (another
/// process than `owner_param`'s) is gone.
fn lease_free(table: &str, owner_param: &str) -> String {
    format!(
        "({table}.lease_until IS NULL OR {table}.lease_until < now()
          OR ({table}.lease_owner IS NOT NULL AND {table}.lease_owner <> {owner_param}
              AND NOT patchbay_instance_alive({table}.lease_owner)))"
    )
}

/// Claims one customer's pending request for delivery now, unless someone else holds its lease.
pub async fn claim_one<D: FollowUp>(
    pool: &PgPool,
    tenant: &str,
    number: &str,
    lease: Lease,
) -> Result<Option<Claimed<D>>, sqlx::Error> {
    let t = D::TABLE;
    let row: Option<ClaimRow> = sqlx::query_as(&format!(
        "UPDATE {t}
            SET lease_until = now() + make_interval(secs => $3), lease_token = gen_random_uuid(),
                lease_owner = $4, attempts = attempts + 1
          WHERE tenant = $1 AND account_number = $2 AND state = 'pending' AND {}
         RETURNING {}",
        lease_free(t, "$4"),
        claim_returning::<D>("")
    ))
    .bind(tenant)
    .bind(number)
    .bind(lease.length.as_secs_f64())
    .bind(lease.owner)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(claimed))
}

/// Claims up to `limit` pending requests that are due, skipping rows another replica is
/// claiming at this moment (FOR UPDATE SKIP LOCKED) or holds the lease of.
pub async fn claim_due<D: FollowUp>(pool: &PgPool, limit: i64, lease: Lease) -> Result<Vec<Claimed<D>>, sqlx::Error> {
    let t = D::TABLE;
    let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
        "UPDATE {t} AS i
            SET lease_until = now() + make_interval(secs => $2), lease_token = gen_random_uuid(),
                lease_owner = $3, attempts = i.attempts + 1
           FROM (SELECT tenant, account_number FROM {t}
                  WHERE state = 'pending' AND next_attempt_at <= now()
                    AND {}
                  ORDER BY next_attempt_at
                  LIMIT $1
                  FOR UPDATE SKIP LOCKED) AS due
          WHERE i.tenant = due.tenant AND i.account_number = due.account_number
         RETURNING {}",
        lease_free(t, "$3"),
        claim_returning::<D>("i.")
    ))
    .bind(limit)
    .bind(lease.length.as_secs_f64())
    .bind(lease.owner)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(claimed).collect())
}

/// Marks a claimed request done (`applied`), if the claimer still holds the lease and it is still
/// the latest request. [`Finish::Newer`]: the lease is given back, so that the newer one goes next.
pub async fn finish_applied<D: FollowUp>(conn: &mut PgConnection, c: &Claimed<D>) -> Result<Finish, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE {}
            SET state = 'applied', applied_at = now(), lease_until = NULL, lease_token = NULL, last_error = '',
                updated_at = now()
          WHERE tenant = $1 AND account_number = $2 AND lease_token = $3 AND generation = $4",
        D::TABLE
    ))
    .bind(&c.tenant)
    .bind(&c.account_number)
    .bind(c.token)
    .bind(c.generation)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Finish::Done);
    }
    Ok(if release(&mut *conn, c, Duration::ZERO, "").await? { Finish::Newer } else { Finish::LeaseLost })
}

/// Gives a claimed request back, pending, to be tried again after `retry_in`. `false`: the
/// claimer no longer held the lease, and nothing was changed.
pub async fn release<D: FollowUp>(
    conn: &mut PgConnection,
    c: &Claimed<D>,
    retry_in: Duration,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE {}
            SET lease_until = NULL, lease_token = NULL, next_attempt_at = now() + make_interval(secs => $4),
                last_error = CASE WHEN $5::text = '' THEN last_error ELSE $5::text END, updated_at = now()
          WHERE tenant = $1 AND account_number = $2 AND lease_token = $3",
        D::TABLE
    ))
    .bind(&c.tenant)
    .bind(&c.account_number)
    .bind(c.token)
    .bind(retry_in.as_secs_f64())
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stops delivering a claimed request for good (the vendor refused it, e.g. the account is gone;
/// or it could not be delivered for too long), unless a newer request arrived meanwhile.
pub async fn finish_rejected<D: FollowUp>(
    conn: &mut PgConnection,
    c: &Claimed<D>,
    error: &str,
) -> Result<Finish, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE {}
            SET state = 'rejected', lease_until = NULL, lease_token = NULL, last_error = $5, updated_at = now()
          WHERE tenant = $1 AND account_number = $2 AND lease_token = $3 AND generation = $4",
        D::TABLE
    ))
    .bind(&c.tenant)
    .bind(&c.account_number)
    .bind(c.token)
    .bind(c.generation)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Finish::Done);
    }
    Ok(if release(&mut *conn, c, Duration::ZERO, "").await? { Finish::Newer } else { Finish::LeaseLost })
}

/// A customer's SIP-table refresh as stored: `pending`, `applied` or `rejected`, and why.
pub async fn refresh_state(pool: &PgPool, tenant: &str, number: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT state, last_error FROM account_sip_refreshes WHERE tenant = $1 AND account_number = $2")
        .bind(tenant)
        .bind(number)
        .fetch_optional(pool)
        .await
}

/// The stored desired status of a customer.
pub async fn intent(pool: &PgPool, tenant: &str, number: &str) -> Result<Option<Intent>, sqlx::Error> {
    type Row = (String, i64, String, i32, String, bool, f64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT desired, generation, state, attempts, last_error,
                COALESCE(lease_until > now(), false),
                CASE WHEN state = 'pending' THEN GREATEST(EXTRACT(EPOCH FROM next_attempt_at - now()), 0)::float8
                     ELSE 0 END
           FROM account_status_intents
          WHERE tenant = $1 AND account_number = $2",
    )
    .bind(tenant)
    .bind(number)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(desired, generation, state, attempts, last_error, leased, due_in)| {
        Some(Intent {
            desired: DesiredStatus::parse(&desired)?,
            generation,
            state,
            attempts,
            last_error,
            leased,
            due_in: Duration::try_from_secs_f64(due_in).unwrap_or_default(),
        })
    }))
}

/// Forgets a deleted account's desired status and SIP-table refresh.
pub async fn delete_intent(conn: &mut PgConnection, tenant: &str, number: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH refresh AS (DELETE FROM account_sip_refreshes WHERE tenant = $1 AND account_number = $2)
         DELETE FROM account_status_intents WHERE tenant = $1 AND account_number = $2",
    )
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
