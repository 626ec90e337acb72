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

const KEY: Key<'static> = Key { tenant: "acme", method: "patchbay.v1.AccountService/CreateAccount", request_id: "r-1" };

#[tokio::test]
async fn the_first_call_owns_a_key_and_its_retry_gets_the_stored_answer() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a").await.unwrap(), Claim::Owned);
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a").await.unwrap(), Claim::InProgress);
    idempotency::complete(&pool, KEY, b"answer").await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a").await.unwrap(), Claim::Done(b"answer".to_vec()));
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_mismatch() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-a").await.unwrap(), Claim::Owned);
    idempotency::complete(&pool, KEY, b"answer").await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"hash-b").await.unwrap(), Claim::Mismatch);
}

#[tokio::test]
async fn keys_are_scoped_by_tenant_and_method() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"h").await.unwrap(), Claim::Owned);
    let other_tenant = Key { tenant: "beta", ..KEY };
    let other_method = Key { method: "patchbay.v1.AccountService/DeleteAccount", ..KEY };
    assert_eq!(idempotency::claim(&pool, other_tenant, b"h").await.unwrap(), Claim::Owned);
    assert_eq!(idempotency::claim(&pool, other_method, b"h").await.unwrap(), Claim::Owned);
}

#[tokio::test]
async fn a_released_key_may_be_claimed_again() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"h").await.unwrap(), Claim::Owned);
    idempotency::release(&pool, KEY).await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"h2").await.unwrap(), Claim::Owned);
}

#[tokio::test]
async fn a_claim_whose_lease_ran_out_is_taken_over_and_expired_keys_are_purged() {
    let pool = pool().await;
    assert_eq!(idempotency::claim(&pool, KEY, b"h").await.unwrap(), Claim::Owned);
    // The owner died: its lease is in the past.
    sqlx::query("UPDATE idempotency_keys SET lease_until = now() - interval '1 second'").execute(&pool).await.unwrap();
    assert_eq!(idempotency::claim(&pool, KEY, b"h").await.unwrap(), Claim::Owned);

    idempotency::complete(&pool, KEY, b"answer").await.unwrap();
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'").execute(&pool).await.unwrap();
    assert_eq!(idempotency::purge_expired(&pool).await.unwrap(), 1);
    assert_eq!(idempotency::claim(&pool, KEY, b"other").await.unwrap(), Claim::Owned);
}

#[tokio::test]
async fn concurrent_claims_of_one_key_have_exactly_one_owner() {
    let pool = pool().await;
    let claims = futures::future::join_all((0..16).map(|_| idempotency::claim(&pool, KEY, b"h"))).await;
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
