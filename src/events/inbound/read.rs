//! Reading an inbound post's body through its trigger's mapping: the customer, the event's id
//! and time, and its conditions. Pure; every refusal names the tenant-file key and the body path.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::{
    proto::v1 as pb,
    registry::events::{BodyFormat, FieldPath, InboundTrigger},
};

/// What a body says, through its trigger's mapping.
#[derive(Debug)]
pub struct Reading {
    pub customer: pb::Customer,
    pub previous_status: Option<String>,
    /// `id:<id>` or `body:<digest>`.
    pub dedupe_key: String,
    pub keyed_by_id: bool,
    pub sent_at: Option<DateTime<Utc>>,
    /// The first `when.fields` condition that does not hold.
    pub unmet: Option<String>,
}

/// Why a body could not be read: an HTTP status and a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub status: u16,
    pub message: String,
}

fn unreadable(status: u16, message: impl Into<String>) -> Unreadable {
    Unreadable { status, message: message.into() }
}

/// The body as JSON (a form body as an object of its fields; a repeated field's last value).
pub fn parse(format: BodyFormat, body: &[u8]) -> Result<serde_json::Value, Unreadable> {
    match format {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| unreadable(400, format!("the body is not JSON ({e}); this trigger's format is json"))),
        BodyFormat::Form => {
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
                unreadable(400, format!("the body is not a form (application/x-www-form-urlencoded): {e}"))
            })?;
            Ok(serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k, v.into())).collect()))
        }
    }
}

/// A mapped value; `key` is the tenant-file key that maps it (`customer.status`).
fn value(body: &serde_json::Value, path: Option<&FieldPath>, key: &str) -> Result<Option<String>, Unreadable> {
    let Some(path) = path else { return Ok(None) };
    path.text_in(body).map_err(|e| unreadable(422, format!("{key}: {e}")))
}

fn required(body: &serde_json::Value, path: Option<&FieldPath>, key: &str) -> Result<Option<String>, Unreadable> {
    match value(body, path, key)? {
        None if path.is_some() => {
            let written = path.map_or("", |p| p.written.as_str());
            Err(unreadable(422, format!("{key}: the body has no value at `{written}`")))
        }
        v => Ok(v),
    }
}

/// A sender's timestamp: RFC 3339, or seconds since 1970.
fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| DateTime::from_timestamp_millis((secs * 1000.0) as i64)).flatten()
}

/// Reads `body` through `trigger`'s mapping. `header_id` is a Standard Webhooks `webhook-id`.
pub fn read(
    trigger: &InboundTrigger,
    body: &serde_json::Value,
    raw: &[u8],
    header_id: Option<&str>,
) -> Result<Reading, Unreadable> {
    let c = &trigger.customer;
    let mut customer = pb::Customer {
        id: value(body, c.id.as_ref(), "customer.id")?.unwrap_or_default(),
        name: value(body, c.name.as_ref(), "customer.name")?.unwrap_or_default(),
        nickname: value(body, c.nickname.as_ref(), "customer.nickname")?.unwrap_or_default(),
        status: required(body, c.status.as_ref(), "customer.status")?.unwrap_or_default(),
        fields: Default::default(),
    };
    for (name, path) in &c.fields {
        if let Some(v) = value(body, Some(path), &format!("customer.fields.{name}"))? {
            customer.fields.insert(name.clone(), v);
        }
    }
    let previous_status = value(body, c.previous_status.as_ref(), "customer.previous_status")?;
    let sent_at = match required(body, trigger.timestamp.as_ref(), "timestamp")? {
        None => None,
        Some(text) => Some(timestamp(&text).ok_or_else(|| {
            unreadable(422, format!("timestamp: `{text}` is neither an RFC 3339 time nor seconds since 1970"))
        })?),
    };
    let event_id = match required(body, trigger.event_id.as_ref(), "event_id")? {
        Some(id) => Some(id),
        None => header_id.map(str::to_owned),
    };
    let (dedupe_key, keyed_by_id) = match event_id {
        Some(id) if id.len() <= 256 => (format!("id:{id}"), true),
        Some(_) => return Err(unreadable(422, "event_id: an event id is at most 256 characters")),
        None => (format!("body:{}", hex::encode(Sha256::digest(raw))), false),
    };
    let mut unmet = None;
    for (i, (path, allowed)) in trigger.matches.iter().enumerate() {
        let got = value(body, Some(path), &format!("when.fields[{i}].path"))?.unwrap_or_default();
        if !allowed.contains(&got.trim().to_lowercase()) {
            unmet = Some(format!("when.fields[{i}]: `{}` is `{}`, not one of the listed values", path.written, got));
            break;
        }
    }
    Ok(Reading { customer, previous_status, dedupe_key, keyed_by_id, sent_at, unmet })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_or_unix_seconds() {
        assert_eq!(timestamp("2026-12-01T10:00:00Z").unwrap().timestamp(), 1_796_119_200);
        assert_eq!(timestamp("1796119200").unwrap().timestamp(), 1_796_119_200);
        assert_eq!(timestamp("1796119200.5").unwrap().timestamp_millis(), 1_796_119_200_500);
        assert!(timestamp("yesterday").is_none() && timestamp("-5").is_none());
    }

    #[test]
    fn a_form_body_is_an_object_of_its_fields() {
        let v = parse(BodyFormat::Form, b"customer.status=current&id=7&id=8").unwrap();
        assert_eq!(v, serde_json::json!({"customer.status": "current", "id": "8"}));
        assert_eq!(parse(BodyFormat::Json, b"{nope").unwrap_err().status, 400);
    }
}
