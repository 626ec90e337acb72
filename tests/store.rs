//! The platform's PostgreSQL tables, against a real database: idempotency keys and the audit trail.

mod common;

use patchbay::store::{
    MIGRATOR, audit,
    idempotency::{self, Claim, Key},
};

async fn pool() -> sqlx::PgPool {
    let url = common::fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    pool
}

/// The instance key of the claims these tests make (one process).
const ME: i64 = 1;

const KEY: Key<'static> = Key { tenant: "acme", method: "patchbay.v1.AccountService/CreateAccount", request_id: "r-1" };

#[tokio::test]
async fn the_first_call_owns_a_key_and_its_retry_gets_the_stored_answer() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a", ME).await.unwrap(), Claim::Owned);
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a", ME).await.unwrap(), Claim::InProgress);
    idempotency::complete(&pool, KEY, b"answer").await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a", ME).await.unwrap(), Claim::Done(b"answer".to_vec()));
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_mismatch() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a", ME).await.unwrap(), Claim::Owned);
    idempotency::complete(&pool, KEY, b"answer").await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-b", ME).await.unwrap(), Claim::Mismatch);
}

#[tokio::test]
async fn keys_are_scoped_by_tenant_and_method() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"h", ME).await.unwrap(), Claim::Owned);
    let other_tenant = Key { tenant: "beta", ..KEY };
    let other_method = Key { method: "patchbay.v1.AccountService/DeleteAccount", ..KEY };
    assert_eq!(idempotency::claim(&pool, other_tenant, b"h", ME).await.unwrap(), Claim::Owned);
    assert_eq!(idempotency::claim(&pool, other_method, b"h", ME).await.unwrap(), Claim::Owned);
}

#[tokio::test]
async fn a_released_key_may_be_claimed_again() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"h", ME).await.unwrap(), Claim::Owned);
    idempotency::release(&pool, KEY).await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"h2", ME).await.unwrap(), Claim::Owned);
}

#[tokio::test]
async fn a_claim_whose_lease_ran_out_is_taken_over_and_expired_keys_are_purged() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"h", ME).await.unwrap(), Claim::Owned);
    // The owner died: its lease is in the past.
    sqlx::query("UPDATE idempotency_keys SET lease_until = now() - interval '1 second'").execute(&pool).await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"h", ME).await.unwrap(), Claim::Owned);

    idempotency::complete(&pool, KEY, b"answer").await.unwrap();
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'").execute(&pool).await.unwrap();
    assert_eq!(idempotency::purge_expired(&pool).await.unwrap(), 1);
    assert_eq!(idempotency::claim(&pool, KEY, b"other", ME).await.unwrap(), Claim::Owned);
}

#[tokio::test]
async fn a_claim_whose_owner_process_died_is_taken_over_at_once_and_a_live_owners_is_not() {
    use sqlx::Connection;
    let url = common::fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    // Another process, alive: it holds its instance lock on a connection of its own.
    let other: i64 = 0x7fff_0000_0000_002a;
    let mut other_conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)").bind(other).execute(&mut other_conn).await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"h", other).await.unwrap(), Claim::Owned);
    assert_eq!(idempotency::claim(&pool, KEY, b"h", ME).await.unwrap(), Claim::InProgress, "its lease holds");
    // It dies (its connection goes, as with kill -9): its claim is ours at once, long before
    // the lease would run out; another request under the key is still refused.
    drop(other_conn);
    let taken = async {
        loop {
            match idempotency::claim(&pool, KEY, b"h", ME).await.unwrap() {
                Claim::InProgress => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                claim => return claim,
            }
        }
    };
    let claim = tokio::time::timeout(std::time::Duration::from_secs(5), taken).await.expect("taken over at once");
    assert_eq!(claim, Claim::Owned);
    assert_eq!(idempotency::claim(&pool, KEY, b"other", 99).await.unwrap(), Claim::Mismatch);
}

#[tokio::test]
async fn concurrent_claims_of_one_key_have_exactly_one_owner() {
    let pool = pool().await;
    let claims = futures::future::join_all((0..16).map(|_| idempotency::claim(&pool, KEY, b"h", ME))).await;
    let owners = claims.into_iter().map(Result::unwrap).filter(|c| *c == Claim::Owned).count();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn audit_pages_filter_by_tenant_and_go_newest_first() {
    let pool = pool().await;
    for (tenant, request_id) in [("acme", "1"), ("beta", "2"), ("acme", "3")] {
        let e = audit::NewEvent {
            tenant,
            caller: "token:abc",
            method: "m",
            provider: "alianza",
            outcome: "OK",
            reason: "",
            latency_ms: 3,
            request_id,
        };
        audit::record(&pool, &e).await.unwrap();
    }
    let acme = audit::page(&pool, Some("acme"), None, 10).await.unwrap();
    assert_eq!(acme.iter().map(|e| e.request_id.as_str()).collect::<Vec<_>>(), ["3", "1"]);
    let after_first = audit::page(&pool, None, Some(acme[0].id), 10).await.unwrap();
    assert_eq!(after_first.iter().map(|e| e.request_id.as_str()).collect::<Vec<_>>(), ["2", "1"]);
}

mod lead_exports {
    //! The dialer's lead exports claim their request_id through the same keys.

    use patchbay::dialer::store::{self as exports, Begin, ExportKey, LeadRow, Outcome};

    use super::*;

    const EXPORT: ExportKey<'static> = ExportKey { tenant: "acme", request_id: "exp-1" };

    fn accepted(idx: i32) -> LeadRow {
        LeadRow {
            idx,
            phone: format!("6140000000{idx}"),
            outcome: Outcome::Accepted,
            lead_id: idx.to_string(),
            error: String::new(),
        }
    }

    async fn recorded(pool: &sqlx::PgPool) -> usize {
        exports::recorded(pool, EXPORT, 0, 100).await.unwrap().len()
    }

    #[tokio::test]
    async fn a_running_export_holds_its_request_id_and_one_that_ended_resumes_at_once_with_its_records() {
        let pool = pool().await;
        assert_eq!(exports::begin(&pool, EXPORT, b"target-a", "L1", ME).await.unwrap(), Begin::Fresh);
        exports::record(&pool, EXPORT, &[accepted(0), accepted(1)]).await.unwrap();
        assert_eq!(exports::begin(&pool, EXPORT, b"target-a", "L1", ME).await.unwrap(), Begin::InProgress);

        exports::release(&pool, EXPORT).await.unwrap();
        assert_eq!(
            exports::begin(&pool, EXPORT, b"target-a", "L1", ME).await.unwrap(),
            Begin::Resume { list_ready: false }
        );
        assert_eq!(recorded(&pool).await, 2);
    }

    #[tokio::test]
    async fn an_export_id_used_for_another_target_is_a_mismatch_even_after_its_lease_ended() {
        let pool = pool().await;
        assert_eq!(exports::begin(&pool, EXPORT, b"target-a", "L1", ME).await.unwrap(), Begin::Fresh);
        exports::release(&pool, EXPORT).await.unwrap();
        assert_eq!(exports::begin(&pool, EXPORT, b"target-b", "L2", ME).await.unwrap(), Begin::Mismatch);
    }

    #[tokio::test]
    async fn a_forgotten_export_leaves_neither_its_key_nor_its_records() {
        let pool = pool().await;
        assert_eq!(exports::begin(&pool, EXPORT, b"target-a", "L1", ME).await.unwrap(), Begin::Fresh);
        exports::record(&pool, EXPORT, &[accepted(0)]).await.unwrap();
        exports::delete(&pool, EXPORT).await.unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys").fetch_one(&pool).await.unwrap();
        assert_eq!((keys, recorded(&pool).await), (0, 0));
        assert_eq!(exports::begin(&pool, EXPORT, b"target-b", "L2", ME).await.unwrap(), Begin::Fresh);
    }

    #[tokio::test]
    async fn an_expired_export_key_starts_afresh_without_the_old_records_whether_purged_or_taken_over() {
        let pool = pool().await;
        let expire = "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'";

        // Taken over by a new export before the purge ran.
        assert_eq!(exports::begin(&pool, EXPORT, b"target-a", "L1", ME).await.unwrap(), Begin::Fresh);
        exports::record(&pool, EXPORT, &[accepted(0)]).await.unwrap();
        exports::release(&pool, EXPORT).await.unwrap();
        sqlx::query(expire).execute(&pool).await.unwrap();
        assert_eq!(exports::begin(&pool, EXPORT, b"target-b", "L2", ME).await.unwrap(), Begin::Fresh);
        assert_eq!(recorded(&pool).await, 0);

        // Purged.
        exports::record(&pool, EXPORT, &[accepted(0)]).await.unwrap();
        sqlx::query(expire).execute(&pool).await.unwrap();
        assert_eq!(idempotency::purge_expired(&pool).await.unwrap(), 1);
        assert_eq!(recorded(&pool).await, 0);
    }
}
