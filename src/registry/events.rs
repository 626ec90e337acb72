//! A tenant file's `events:` key: the CRM's HTTP triggers patchbay receives (`events.inbound`)
//! and the endpoints it sends webhooks to (`events.outbound`). Read like every key (serde with
//! positions), then checked here: paths, secrets, actions and the areas they need.

use std::{collections::BTreeMap, time::Duration};

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{provider::ValidateCtx, secrets::SecretRef};
use crate::{
    ops::webhooks::{self, SigningKey},
    store::outbox::EventType,
};

/// Inbound triggers and outbound endpoints of one tenant.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    /// The CRM's triggers patchbay receives, by name: each is
    /// `POST <public URL>/triggers/<tenant>/<name>` (plus `/<secret>` with `auth.path_secret`).
    #[serde(default)]
    pub inbound: BTreeMap<String, InboundFile>,
    /// Where patchbay sends webhooks of what happened, by endpoint name.
    #[serde(default)]
    pub outbound: BTreeMap<String, OutboundFile>,
}

/// One inbound trigger, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundFile {
    /// How the sender proves it is the tenant's CRM: exactly one of `path_secret`, `basic`,
    /// `standard_webhooks`.
    pub auth: AuthFile,
    /// The body's format: `json` (default) or `form` (application/x-www-form-urlencoded).
    #[serde(default)]
    pub format: BodyFormat,
    /// Where the body holds the sender's id of this event (a JSON pointer such as `/event/id`,
    /// or a dotted path such as `event.id`). Same id twice: it takes effect once. Without it a
    /// Standard Webhooks `webhook-id` is used, else the body itself within `dedupe_window_seconds`.
    #[serde(default)]
    pub event_id: Option<String>,
    /// Where the body holds the time of the change (RFC 3339, or seconds since 1970). With it an
    /// older change arriving after a newer one for the same customer is not applied; without it
    /// arrival order decides.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Where the body holds the customer: JSON pointers or dotted paths, read into the same
    /// Customer a gRPC call carries (so `account_number_field` works as for gRPC).
    pub customer: CustomerFile,
    /// Conditions, as the CRM's own trigger conditions: an event that fails one is stored as
    /// `skipped` and answered 202, nothing applied.
    #[serde(default)]
    pub when: Option<WhenFile>,
    /// What the event does: `set_customer_status` (the account area's durable status follow-up,
    /// as SetCustomerStatus) or `sync_sip_lines` (a durable refresh of the customer's custom SIP
    /// table from the vendor, as SyncSipLines). Both need `triggers.account`.
    pub action: Action,
    /// With `sync_sip_lines`: `full` (default: the table becomes equal to the vendor's lines) or
    /// `add_only` (rows the vendor no longer has are kept).
    #[serde(default)]
    pub sync_mode: Option<SipSyncMode>,
    /// How long an identical body without an event id counts as a repeat (1-86400, default 600).
    #[serde(default)]
    pub dedupe_window_seconds: Option<u64>,
}

/// How an inbound trigger's sender authenticates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// A secret in the URL, like Delacon's callback: the trigger is
    /// `/triggers/<tenant>/<name>/<secret>`. At least 24 of letters, digits, `-`, `_`, `.`, `~`.
    #[serde(default)]
    pub path_secret: Option<SecretRef>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic: Option<BasicFile>,
    /// A Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    #[serde(default)]
    pub standard_webhooks: Option<SignedFile>,
}

/// HTTP basic credentials.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicFile {
    pub username: String,
    /// A secret: `${env:NAME}` or `${file:/path}`. At least 16 characters.
    pub password: SecretRef,
}

/// A Standard Webhooks signing secret and how far the sender's clock may be from ours.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedFile {
    /// `whsec_` and the base64 of 24-64 random bytes. A secret.
    pub secret: SecretRef,
    /// Largest accepted difference between `webhook-timestamp` and now, in seconds (1-3600,
    /// default 300).
    #[serde(default)]
    pub tolerance_seconds: Option<u64>,
}

/// A body's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    #[default]
    Json,
    Form,
}

/// Where a body holds the customer's fields.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerFile {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub nickname: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// The status before the change, when the sender tells it (`when.status_changed` compares
    /// with it; else with the status patchbay last received for the customer).
    #[serde(default)]
    pub previous_status: Option<String>,
    /// Other CRM fields by name (an `account_number_field` other than `nickname` is one of these).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// An inbound trigger's conditions; all must hold.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenFile {
    /// Only when the customer's status changed.
    #[serde(default)]
    pub status_changed: bool,
    /// Only when each of these body values is one of its list (e.g. the product).
    #[serde(default)]
    pub fields: Vec<MatchFile>,
}

/// One body value and the values it may have.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    pub path: String,
    /// Compared without regard to case or surrounding blanks.
    #[serde(rename = "in")]
    pub one_of: Vec<String>,
}

/// What an inbound trigger does with its customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The customer's CRM status becomes its desired vendor status (the tenant's `status_map`),
    /// stored and delivered by the durable follow-up, as SetCustomerStatus.
    SetCustomerStatus,
    /// The customer's custom SIP table is synced from the vendor (as SyncSipLines), stored as a
    /// request and retried through vendor outages; the sync reports `sip_lines.synced`.
    SyncSipLines,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SetCustomerStatus => "set_customer_status",
            Self::SyncSipLines => "sync_sip_lines",
        }
    }

    /// The trigger area the action needs.
    pub fn area(self) -> &'static str {
        match self {
            Self::SetCustomerStatus | Self::SyncSipLines => "account",
        }
    }
}

/// How a `sync_sip_lines` trigger syncs, as SyncSipLines' `mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SipSyncMode {
    #[default]
    Full,
    AddOnly,
}

/// One outbound endpoint, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundFile {
    /// Where webhooks are POSTed: `https://`, or `http://` to a loopback or private address.
    pub url: String,
    /// The Standard Webhooks signing secret the receiver verifies with: `whsec_` and base64 of
    /// 24-64 random bytes. A secret.
    pub secret: SecretRef,
    /// The event types sent here (default: all): order.state_changed, customer_status.applied,
    /// customer_status.rejected, export.finished, sip_lines.synced, tenant.credentials_refused,
    /// tenant.reload_failed.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Whether `sip_lines.synced` carries the SIP passwords (for equipment provisioning). Default false.
    #[serde(default)]
    pub include_passwords: bool,
}

// ---- checked ----

/// A tenant's events, checked.
#[derive(Debug, Default)]
pub struct TenantEvents {
    pub inbound: BTreeMap<String, InboundTrigger>,
    pub outbound: Vec<Endpoint>,
}

impl TenantEvents {
    /// The endpoints subscribed to `event`.
    pub fn subscribers(&self, event: EventType) -> impl Iterator<Item = &Endpoint> {
        self.outbound.iter().filter(move |e| e.events.contains(&event))
    }

    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.outbound.iter().find(|e| e.name == name)
    }
}

/// An inbound trigger, checked.
#[derive(Debug)]
pub struct InboundTrigger {
    pub name: String,
    pub auth: InboundAuth,
    pub format: BodyFormat,
    pub event_id: Option<FieldPath>,
    pub timestamp: Option<FieldPath>,
    pub customer: CustomerPaths,
    pub status_changed: bool,
    pub matches: Vec<(FieldPath, Vec<String>)>,
    pub action: Action,
    /// `sync_mode` (only read with `sync_sip_lines`).
    pub sync_mode: SipSyncMode,
    pub dedupe_window: Duration,
}

/// How a trigger's sender authenticates, with its resolved secret.
pub enum InboundAuth {
    PathSecret(SecretString),
    Basic { username: String, password: SecretString },
    StandardWebhooks { key: SigningKey, tolerance_secs: u64 },
}

impl std::fmt::Debug for InboundAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PathSecret(_) => "PathSecret(<redacted>)",
            Self::Basic { .. } => "Basic(<redacted>)",
            Self::StandardWebhooks { .. } => "StandardWebhooks(<redacted>)",
        })
    }
}

/// Where the customer's fields are, each with the key it came from (for error messages).
#[derive(Debug, Default)]
pub struct CustomerPaths {
    pub id: Option<FieldPath>,
    pub name: Option<FieldPath>,
    pub nickname: Option<FieldPath>,
    pub status: Option<FieldPath>,
    pub previous_status: Option<FieldPath>,
    pub fields: Vec<(String, FieldPath)>,
}

/// An outbound endpoint, checked.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub url: reqwest::Url,
    pub key: SigningKey,
    pub events: Vec<EventType>,
    pub include_passwords: bool,
}

/// A place in a body: a JSON pointer (`/customer/status`) or a dotted path (`customer.status`;
/// a form body's field name is one dotted path, read whole first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub written: String,
    kind: PathKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathKind {
    Pointer,
    Dotted(Vec<String>),
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let written = text.to_owned();
        if text.is_empty() {
            return Err("a path cannot be empty: a JSON pointer such as `/customer/status` or `customer.status`".into());
        }
        if text.starts_with('/') {
            let bad_escape = text.split('/').any(|seg| {
                let mut it = seg.chars().peekable();
                while let Some(c) = it.next() {
                    if c == '~' && !matches!(it.next(), Some('0' | '1')) {
                        return true;
                    }
                }
                false
            });
            if bad_escape {
                return Err(format!("`{text}`: in a JSON pointer `~` is written `~0` and `/` inside a key `~1`"));
            }
            return Ok(Self { written, kind: PathKind::Pointer });
        }
        let segs: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segs.iter().any(String::is_empty) {
            return Err(format!("`{text}`: a dotted path has no empty parts (e.g. `customer.status`)"));
        }
        Ok(Self { written, kind: PathKind::Dotted(segs) })
    }

    /// The value at this path: a text, number or boolean, as text; `Ok(None)` when absent or null.
    pub fn text_in(&self, body: &serde_json::Value) -> Result<Option<String>, String> {
        let found = match &self.kind {
            PathKind::Pointer => body.pointer(&self.written),
            PathKind::Dotted(segs) => body.get(&self.written).or_else(|| {
                segs.iter().try_fold(body, |node, seg| match node {
                    serde_json::Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                    other => other.get(seg),
                })
            }),
        };
        match found {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_json::Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(format!("`{}` holds an object or a list, not a value", self.written)),
        }
    }
}

const NAME_RULE: &str = "lowercase letters, digits, `-` and `_`, at most 63";
const DEFAULT_DEDUPE_WINDOW: u64 = 600;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks `events:` (already read into `file`); `areas` are the trigger keys the file declares.
pub fn check(file: &EventsFile, areas: &[&str], ctx: &mut ValidateCtx<'_>) -> Option<TenantEvents> {
    let before = ctx.problem_count();
    let mut events = TenantEvents::default();
    for (name, trigger) in &file.inbound {
        let rel = format!("inbound.{name}");
        if !valid_name(name) {
            ctx.problem_at_key(&rel, format!("a trigger name is part of its URL: {NAME_RULE}"));
            continue;
        }
        if let Some(t) = inbound(name, trigger, areas, &mut ctx.child(&rel)) {
            events.inbound.insert(name.clone(), t);
        }
    }
    for (name, endpoint) in &file.outbound {
        let rel = format!("outbound.{name}");
        if !valid_name(name) {
            ctx.problem_at_key(&rel, format!("an endpoint name is {NAME_RULE}"));
            continue;
        }
        if let Some(e) = outbound(name, endpoint, &mut ctx.child(&rel)) {
            events.outbound.push(e);
        }
    }
    (ctx.problem_count() == before).then_some(events)
}

fn path(ctx: &mut ValidateCtx<'_>, rel: &str, text: Option<&String>) -> Option<FieldPath> {
    let text = text?;
    match FieldPath::parse(text) {
        Ok(p) => Some(p),
        Err(message) => {
            ctx.problem(rel, message);
            None
        }
    }
}

fn inbound(name: &str, t: &InboundFile, areas: &[&str], ctx: &mut ValidateCtx<'_>) -> Option<InboundTrigger> {
    let before = ctx.problem_count();
    let auth = inbound_auth(&t.auth, ctx);
    let c = &t.customer;
    let customer = CustomerPaths {
        id: path(ctx, "customer.id", c.id.as_ref()),
        name: path(ctx, "customer.name", c.name.as_ref()),
        nickname: path(ctx, "customer.nickname", c.nickname.as_ref()),
        status: path(ctx, "customer.status", c.status.as_ref()),
        previous_status: path(ctx, "customer.previous_status", c.previous_status.as_ref()),
        fields: c
            .fields
            .iter()
            .filter_map(|(k, v)| path(ctx, &format!("customer.fields.{k}"), Some(v)).map(|p| (k.clone(), p)))
            .collect(),
    };
    let when = t.when.as_ref();
    let mut matches = Vec::new();
    for (i, m) in when.map_or(&[][..], |w| &w.fields[..]).iter().enumerate() {
        let rel = format!("when.fields[{i}]");
        if m.one_of.is_empty() {
            ctx.problem(&format!("{rel}.in"), "list at least one value (an empty list would skip every event)");
        }
        if let Some(p) = path(ctx, &format!("{rel}.path"), Some(&m.path)) {
            matches.push((p, m.one_of.iter().map(|v| v.trim().to_lowercase()).collect()));
        }
    }
    let status_changed = when.is_some_and(|w| w.status_changed);
    match t.action {
        Action::SetCustomerStatus => {
            if c.status.is_none() {
                ctx.problem(
                    "customer",
                    "`set_customer_status` needs `customer.status`: where the body holds the status",
                );
            }
        }
        Action::SyncSipLines => {}
    }
    if t.sync_mode.is_some() && t.action != Action::SyncSipLines {
        ctx.problem("sync_mode", "only `sync_sip_lines` syncs: remove `sync_mode` or change the action");
    }
    if status_changed && c.status.is_none() {
        ctx.problem("when.status_changed", "needs `customer.status`");
    }
    if !areas.contains(&t.action.area()) {
        ctx.problem(
            "action",
            format!(
                "`{}` needs the tenant's `triggers.{}`, which this file does not declare",
                t.action.as_str(),
                t.action.area()
            ),
        );
    }
    let window = t.dedupe_window_seconds.unwrap_or(DEFAULT_DEDUPE_WINDOW);
    if !(1..=86_400).contains(&window) {
        ctx.problem("dedupe_window_seconds", format!("must be 1-86400 (is {window})"));
    }
    let event_id = path(ctx, "event_id", t.event_id.as_ref());
    let timestamp = path(ctx, "timestamp", t.timestamp.as_ref());
    if ctx.problem_count() > before {
        return None;
    }
    Some(InboundTrigger {
        name: name.to_owned(),
        auth: auth?,
        format: t.format,
        event_id,
        timestamp,
        customer,
        status_changed,
        matches,
        action: t.action,
        sync_mode: t.sync_mode.unwrap_or_default(),
        dedupe_window: Duration::from_secs(window),
    })
}

fn inbound_auth(a: &AuthFile, ctx: &mut ValidateCtx<'_>) -> Option<InboundAuth> {
    let given = [a.path_secret.is_some(), a.basic.is_some(), a.standard_webhooks.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        ctx.problem("auth", "set exactly one of `path_secret`, `basic`, `standard_webhooks`");
        return None;
    }
    if let Some(secret) = &a.path_secret {
        return ctx.secret_checked("auth.path_secret", secret, check_path_secret).map(InboundAuth::PathSecret);
    }
    if let Some(basic) = &a.basic {
        if basic.username.is_empty() || basic.username.contains(':') {
            ctx.problem("auth.basic.username", "must not be empty and has no `:` (HTTP basic authentication)");
        }
        let password = ctx.secret_checked("auth.basic.password", &basic.password, |p| {
            if p.chars().count() < 16 { Err("must be at least 16 characters".into()) } else { Ok(()) }
        })?;
        return Some(InboundAuth::Basic { username: basic.username.clone(), password });
    }
    let signed = a.standard_webhooks.as_ref()?;
    let tolerance_secs = signed.tolerance_seconds.unwrap_or(webhooks::DEFAULT_TOLERANCE_SECS);
    if !(1..=3600).contains(&tolerance_secs) {
        ctx.problem("auth.standard_webhooks.tolerance_seconds", format!("must be 1-3600 (is {tolerance_secs})"));
    }
    let key = signing_key(ctx, "auth.standard_webhooks.secret", &signed.secret)?;
    Some(InboundAuth::StandardWebhooks { key, tolerance_secs })
}

/// The signing key of a `whsec_` secret. A secret the resolver does not read (`validate
/// --skip-secrets`) stands in as a random key: only its reference is checked.
fn signing_key(ctx: &mut ValidateCtx<'_>, rel: &str, secret: &SecretRef) -> Option<SigningKey> {
    let mut parsed = None;
    let value = ctx.secret_checked(rel, secret, |s| SigningKey::parse(s).map(|k| parsed = Some(k)))?;
    parsed.or_else(|| SigningKey::parse(value.expose_secret()).ok()).or_else(|| Some(SigningKey::generate()))
}

fn check_path_secret(s: &str) -> Result<(), String> {
    if s.len() < 24 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
        return Err("must be at least 24 of letters, digits, `-`, `_`, `.`, `~` (e.g. `openssl rand -hex 24`)".into());
    }
    Ok(())
}

fn outbound(name: &str, e: &OutboundFile, ctx: &mut ValidateCtx<'_>) -> Option<Endpoint> {
    let before = ctx.problem_count();
    let url = match reqwest::Url::parse(&e.url) {
        Ok(url) if url.scheme() == "https" => Some(url),
        Ok(url) if url.scheme() == "http" && private_host(&url) => Some(url),
        Ok(url) if url.scheme() == "http" => {
            ctx.problem("url", "plain `http://` only to a loopback or private address; use `https://`");
            None
        }
        Ok(_) => {
            ctx.problem("url", "must be an `https://` URL");
            None
        }
        Err(err) => {
            ctx.problem("url", format!("not a URL ({err})"));
            None
        }
    };
    let key = signing_key(ctx, "secret", &e.secret);
    let events = match &e.events {
        None => EventType::ALL.to_vec(),
        Some(names) => {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                match EventType::parse(n) {
                    Some(t) if !out.contains(&t) => out.push(t),
                    Some(_) => ctx.problem(&format!("events[{i}]"), format!("`{n}` is listed twice")),
                    None => {
                        let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                        ctx.problem(
                            &format!("events[{i}]"),
                            format!("unknown event `{n}`; one of: {}", known.join(", ")),
                        )
                    }
                }
            }
            if names.is_empty() {
                ctx.problem("events", "list at least one event type, or leave `events` out for all");
            }
            out
        }
    };
    if ctx.problem_count() > before {
        return None;
    }
    Some(Endpoint { name: name.to_owned(), url: url?, key: key?, events, include_passwords: e.include_passwords })
}

fn private_host(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_and_dotted_paths_read_texts_numbers_and_booleans() {
        let body = serde_json::json!({"customer": {"status": "current", "id": 42, "vip": true, "tags": ["a", "b"]},
                                      "a.b": "flat"});
        let read = |p: &str| FieldPath::parse(p).unwrap().text_in(&body);
        assert_eq!(read("/customer/status"), Ok(Some("current".into())));
        assert_eq!(read("customer.id"), Ok(Some("42".into())));
        assert_eq!(read("customer.vip"), Ok(Some("true".into())));
        assert_eq!(read("customer.tags.1"), Ok(Some("b".into())));
        assert_eq!(read("a.b"), Ok(Some("flat".into())), "a whole key first (form fields)");
        assert_eq!(read("/customer/missing"), Ok(None));
        assert!(read("/customer").unwrap_err().contains("object"));
    }

    #[test]
    fn bad_paths_say_the_rule() {
        assert!(FieldPath::parse("").unwrap_err().contains("empty"));
        assert!(FieldPath::parse("customer..status").unwrap_err().contains("empty parts"));
        assert!(FieldPath::parse("/a~2b").unwrap_err().contains("~0"));
    }
}
