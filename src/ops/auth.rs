//! Caller authentication: `authorization: Bearer <token>` checked against SHA-256 hashes.
//!
//! Tenant files and server settings hold only `sha256:<hex>` of each token, so a leaked config
//! leaks no credential. Comparisons are constant-time.

use std::{fmt, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, de};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;

use super::ApiError;

/// The SHA-256 of a bearer token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of_token(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Constant-time equality, for checks against a tenant's own tokens.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// How audit rows and logs name a caller: a prefix of the hash, never the token.
    pub fn caller_id(&self) -> String {
        format!("token:{}", &hex::encode(self.0)[..12])
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.caller_id())
    }
}

impl FromStr for TokenHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rule = "must be `sha256:` and the 64 hex digits of the SHA-256 of the bearer token \
                    (`patchbay hash-token` prints it)";
        let hex_part = s.trim().strip_prefix("sha256:").ok_or_else(|| rule.to_owned())?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| rule.to_owned())?;
        Ok(Self(bytes))
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let s = String::deserialize(de)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for TokenHash {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TokenHash".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^sha256:[0-9a-fA-F]{64}$",
            "description": "`sha256:` and the hex SHA-256 of a bearer token (`patchbay hash-token` prints it)."
        })
    }
}

/// The hash of the bearer token a call carries.
pub fn bearer(metadata: &MetadataMap) -> Result<TokenHash, ApiError> {
    let missing = || ApiError::unauthenticated("MISSING_TOKEN", "send metadata `authorization: Bearer <token>`");
    let value = metadata.get("authorization").ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(missing)?;
    Ok(TokenHash::of_token(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_their_text_form() {
        let h = TokenHash::of_token("demo-token");
        assert_eq!(h.to_string().parse::<TokenHash>().unwrap(), h);
        assert_eq!(h.caller_id().len(), "token:".len() + 12);
    }

    #[test]
    fn plain_tokens_are_rejected_with_the_rule() {
        let err = "demo-token".parse::<TokenHash>().unwrap_err();
        assert!(err.contains("sha256:"), "{err}");
        assert!("sha256:abcd".parse::<TokenHash>().is_err());
    }

    #[test]
    fn bearer_reads_the_authorization_metadata() {
        let mut md = MetadataMap::new();
        assert_eq!(bearer(&md).unwrap_err().code, tonic::Code::Unauthenticated);
        md.insert("authorization", "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&md).unwrap_err().reason, "MISSING_TOKEN");
        md.insert("authorization", "Bearer demo-token".parse().unwrap());
        assert_eq!(bearer(&md).unwrap(), TokenHash::of_token("demo-token"));
    }
}
