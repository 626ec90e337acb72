//! Standard Webhooks (standardwebhooks.com): the signature patchbay puts on the webhooks it sends
//! and checks on the inbound triggers that use it, and the `whsec_` secrets both sides share.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; `webhook-signature` holds
//! one or more space-separated `v1,<base64 HMAC-SHA256>` (several while a secret is rotated).

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The key lengths the specification allows (bytes, after base64).
pub const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// The default tolerance between a sender's `webhook-timestamp` and now.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// A signing key, decoded from its `whsec_<base64>` form. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Reads `whsec_<base64>`; the error says what is wrong without quoting the secret.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) else {
            return Err(format!("a Standard Webhooks secret starts with `{SECRET_PREFIX}` (then base64)"));
        };
        let key = B64.decode(encoded.trim()).map_err(|_| format!("the part after `{SECRET_PREFIX}` is not base64"))?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(format!(
                "the key is {} bytes; Standard Webhooks keys are {}-{} bytes (e.g. `{SECRET_PREFIX}` and 32 random bytes in base64)",
                key.len(),
                KEY_BYTES.start(),
                KEY_BYTES.end()
            ));
        }
        Ok(Self(key))
    }

    /// A new random key (`patchbay sim webhook-receiver` prints one).
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// The `whsec_` form, to give to the other side.
    pub fn to_secret(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(id, timestamp, body).finalize().into_bytes()))
    }

    /// Checks a message's headers against this key, `now` being the receiver's clock (unix seconds).
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: u64,
    ) -> Result<(), Refusal> {
        if id.is_empty() {
            return Err(Refusal::MissingHeader("webhook-id"));
        }
        if signatures.trim().is_empty() {
            return Err(Refusal::MissingHeader("webhook-signature"));
        }
        let at: i64 = timestamp.trim().parse().map_err(|_| Refusal::BadTimestamp)?;
        let skew = now.abs_diff(at);
        if skew > tolerance_secs {
            return Err(Refusal::Stale { skew_secs: skew, tolerance_secs });
        }
        let expected = self.mac(id, at, body).finalize().into_bytes();
        let mut matched = false;
        for candidate in signatures.split_whitespace() {
            let Some(("v1", encoded)) = candidate.split_once(',') else { continue };
            let Ok(given) = B64.decode(encoded) else { continue };
            // Every candidate is compared (in constant time), so timing tells nothing of which matched.
            matched |= bool::from(given.ct_eq(expected.as_slice()));
        }
        if matched { Ok(()) } else { Err(Refusal::BadSignature) }
    }
}

/// Why a signed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the `{0}` header is missing (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not a number of seconds since 1970")]
    BadTimestamp,
    #[error(
        "`webhook-timestamp` is {skew_secs} s away from this server's clock; at most {tolerance_secs} s are accepted (a replayed or delayed message, or a clock out of sync)"
    )]
    Stale { skew_secs: u64, tolerance_secs: u64 },
    #[error(
        "no `v1,` signature in `webhook-signature` matches: the secret differs, or the body, webhook-id or webhook-timestamp changed after signing (signed content: `<webhook-id>.<webhook-timestamp>.<body>`)"
    )]
    BadSignature,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signing_matches_the_specification_s_example() {
        let key = SigningKey::parse(SPEC_SECRET).unwrap();
        assert_eq!(key.sign(SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()), SPEC_SIGNATURE);
    }

    #[test]
    fn the_specification_s_example_verifies_and_any_change_is_refused() {
        let key = SigningKey::parse(SPEC_SECRET).unwrap();
        let ok =
            |id: &str, body: &str, sig: &str| key.verify(id, "1614265330", sig, body.as_bytes(), SPEC_TS + 10, 300);
        assert_eq!(ok(SPEC_ID, SPEC_BODY, SPEC_SIGNATURE), Ok(()));
        assert_eq!(ok(SPEC_ID, SPEC_BODY, &format!("v1,bm90IGl0 {SPEC_SIGNATURE}")), Ok(()), "one of several");
        assert_eq!(ok(SPEC_ID, r#"{"test": 2432232315}"#, SPEC_SIGNATURE), Err(Refusal::BadSignature));
        assert_eq!(ok("msg_other", SPEC_BODY, SPEC_SIGNATURE), Err(Refusal::BadSignature));
        assert_eq!(
            ok(SPEC_ID, SPEC_BODY, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            Err(Refusal::BadSignature)
        );
        assert_eq!(ok(SPEC_ID, SPEC_BODY, ""), Err(Refusal::MissingHeader("webhook-signature")));
    }

    #[test]
    fn a_timestamp_outside_the_tolerance_is_stale_either_way() {
        let key = SigningKey::parse(SPEC_SECRET).unwrap();
        let at = |now: i64| key.verify(SPEC_ID, "1614265330", SPEC_SIGNATURE, SPEC_BODY.as_bytes(), now, 300);
        assert_eq!(at(SPEC_TS + 301), Err(Refusal::Stale { skew_secs: 301, tolerance_secs: 300 }));
        assert_eq!(at(SPEC_TS - 301), Err(Refusal::Stale { skew_secs: 301, tolerance_secs: 300 }));
        assert_eq!(at(SPEC_TS + 300), Ok(()));
        assert_eq!(
            key.verify(SPEC_ID, "yesterday", SPEC_SIGNATURE, SPEC_BODY.as_bytes(), SPEC_TS, 300),
            Err(Refusal::BadTimestamp)
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_24_to_64_bytes_and_errors_never_quote_them() {
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not*base64", "whsec_c2hvcnQ="] {
            let err = SigningKey::parse(bad).unwrap_err();
            assert!(!err.contains(bad.trim_start_matches("whsec_")), "{err}");
        }
        let key = SigningKey::generate();
        assert_eq!(SigningKey::parse(&key.to_secret()).unwrap().0, key.0);
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}
