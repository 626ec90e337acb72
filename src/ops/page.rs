//! Opaque page tokens (Google AIP-158): the position of the last item served plus a digest of the
//! filter it was served under, so a token cannot be replayed against another query.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::ApiError;

/// Page sizes: 0 means the default; larger than the maximum is clamped (AIP-158).
pub fn page_size(requested: i32, default: i64, max: i64) -> Result<i64, ApiError> {
    match requested {
        n if n < 0 => Err(ApiError::invalid_field("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok(i64::from(n).min(max)),
    }
}

/// A token continuing after the item with sort key `after`, for the query described by `filter`.
pub fn encode(after: &str, filter: &str) -> String {
    let digest = &Sha256::digest(filter.as_bytes())[..8];
    URL_SAFE_NO_PAD.encode(format!("{}.{after}", hex::encode(digest)))
}

/// The sort key a token continues after. `Ok(None)` for the first page (empty token).
pub fn decode(token: &str, filter: &str) -> Result<Option<String>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || ApiError::invalid_field("page_token", "not a token from a previous answer to this same query");
    let text = URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(invalid)?;
    let (digest, after) = text.split_once('.').ok_or_else(invalid)?;
    if digest != hex::encode(&Sha256::digest(filter.as_bytes())[..8]) {
        return Err(invalid());
    }
    Ok(Some(after.to_owned()))
}

/// One page of `items`, which are in ascending order of their unique `key`: those after `after`
/// (a token's position), at most `size` of them, and the key to continue after when more follow.
pub fn after_key<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> String,
    after: Option<&str>,
    size: i64,
) -> (Vec<T>, Option<String>) {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let mut rest = items.into_iter().filter(|item| after.is_none_or(|after| key(item).as_str() > after));
    let page: Vec<T> = rest.by_ref().take(size).collect();
    let next = match (rest.next(), page.last()) {
        (Some(_), Some(last)) => Some(key(last)),
        _ => None,
    };
    (page, next)
}

/// A page answer's `next_page_token`: empty on the last page.
pub fn next_token(next: Option<String>, filter: &str) -> String {
    next.map(|key| encode(&key, filter)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_for_the_same_filter_only() {
        let t = encode("42", "tenant=acme");
        assert_eq!(decode(&t, "tenant=acme").unwrap(), Some("42".into()));
        assert_eq!(decode(&t, "tenant=other").unwrap_err().fields(), ["page_token"]);
        assert_eq!(decode("", "x").unwrap(), None);
        assert!(decode("!!!", "x").is_err());
    }

    #[test]
    fn pages_of_a_sorted_list_cover_it_once_and_end_with_no_token() {
        let items: Vec<u32> = (1..=7).collect();
        let key = |n: &u32| format!("{n:03}");
        let (first, next) = after_key(items.clone(), key, None, 3);
        assert_eq!((first, next.as_deref()), (vec![1, 2, 3], Some("003")));
        let (second, next) = after_key(items.clone(), key, Some("003"), 3);
        assert_eq!((second, next.as_deref()), (vec![4, 5, 6], Some("006")));
        let (last, next) = after_key(items.clone(), key, Some("006"), 3);
        assert_eq!((last, next), (vec![7], None));
        let (exact, next) = after_key(items, key, Some("004"), 3);
        assert_eq!((exact, next), (vec![5, 6, 7], None), "a full last page has no next token");
        assert_eq!(next_token(None, "f"), "");
    }

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        assert_eq!(page_size(0, 50, 1000).unwrap(), 50);
        assert_eq!(page_size(5000, 50, 1000).unwrap(), 1000);
        assert!(page_size(-1, 50, 1000).is_err());
    }
}
