//! One tenant file: its keys (the operators' manual and the JSON Schema's source) and its
//! validation into a [`TenantSpec`], reporting every problem with file, line, column and key path.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub use super::provider::MAX_PROBLEMS;
use super::{
    provider::AreaEntry,
    provider::{Problem, SecretSeen, ValidateCtx, ValidatedTrigger},
    read::MAX_TENANT_FILE_BYTES,
    secrets::SecretResolver,
    yaml::{self, KeyPath, Position, Value},
};
use crate::ops::auth::TokenHash;
pub use crate::ops::text::one_line;

/// A tenant file in `providers.d/`, named `<tenant>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "patchbay tenant file", extend("additionalProperties" = false))]
pub struct TenantFile {
    /// The tenant's id, used in every gRPC request's `tenant` field. Lowercase letters, digits and
    /// `-` (at most 63), and exactly the file's name without `.yaml`.
    pub tenant: String,
    /// A display name for people (RegistryService, logs). Defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Who may call patchbay for this tenant.
    pub access: Access,
    /// The vendors this tenant uses: at most one trigger per service area.
    /// One trigger per service area; `provider:` picks the vendor. (Its schema is the areas'
    /// own, put in by [`json_schema`].)
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub triggers: Option<Value>,
    /// This tenant's own limits; each unset one is the server's.
    #[serde(default)]
    pub limits: Option<TenantLimits>,
    /// The CRM's HTTP triggers patchbay receives, and the endpoints it sends webhooks to.
    #[serde(default)]
    pub events: Option<super::events::EventsFile>,
}

/// Limits of one tenant.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Vendor HTTP calls this tenant may have in flight at once, all its providers together
    /// (1-1000); more wait their turn. Default: the server's `--tenant-vendor-in-flight` (32).
    /// Raise it for a tenant with a large vendor contract; lower it to keep a tenant from taking a
    /// vendor's whole rate limit.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub vendor_in_flight: Option<u32>,
}

/// The range of `limits.vendor_in_flight`.
const VENDOR_IN_FLIGHT: std::ops::RangeInclusive<u32> = 1..=1000;

/// Who may act for a tenant.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Bearer tokens allowed to act for this tenant, each as `sha256:<hex>` of the token
    /// (`patchbay hash-token` prints it). Several tokens allow rotating one without downtime.
    pub tokens: Vec<TokenHash>,
}

fn triggers_schema(areas: &[&AreaEntry], generator: &mut SchemaGenerator) -> Schema {
    let mut properties = serde_json::Map::new();
    for area in areas {
        properties.insert(area.key.to_owned(), (area.schema)(generator).into());
    }
    json_schema!({
        "type": "object",
        "description": "One trigger per service area; `provider:` picks the vendor.",
        "properties": properties,
        "additionalProperties": false
    })
}

/// A problem with a position, as operators see it:
/// `providers.d/acme.yaml:12:5: triggers.account.custom_sip_table.dial_number: invalid type ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted key path; empty for problems of the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl Diagnostic {
    /// A diagnostic on one line, whatever its parts echo (see [`one_line`]).
    pub fn new(file: &str, line: usize, column: usize, path: &str, message: &str) -> Self {
        Self {
            file: one_line(file).into_owned(),
            line,
            column,
            path: one_line(path).into_owned(),
            message: one_line(message).into_owned(),
        }
    }

    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        Self::new(file, 1, 1, "", &message.into())
    }
}

/// A valid tenant file, its secrets resolved, ready to build.
pub struct TenantSpec {
    pub id: String,
    pub name: String,
    pub tokens: Vec<TokenHash>,
    pub(crate) triggers: Vec<(&'static str, ValidatedTrigger)>,
    /// The triggers as written, secrets replaced by where they come from.
    pub view: serde_json::Value,
    /// Digest of the resolved secrets' digests: a rotated secret changes it.
    pub(crate) secrets_digest: [u8; 32],
    /// `limits.vendor_in_flight`, when the file sets it.
    pub vendor_in_flight: Option<usize>,
    /// `events:` checked (empty when the file has none).
    pub events: super::events::TenantEvents,
}

fn secrets_digest(seen: &[SecretSeen]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for s in seen {
        h.update(s.path.to_string().as_bytes());
        h.update(s.digest);
    }
    h.finalize().into()
}

/// Whether `id` may name a tenant (and so a file).
pub fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// Validates the bytes of a tenant file. `file` is how diagnostics name it; `stem` is its name
/// without extension, which the `tenant:` key must equal.
pub fn validate(
    file: &str,
    stem: &str,
    bytes: &[u8],
    areas: &[&AreaEntry],
    secrets: &dyn SecretResolver,
) -> Result<TenantSpec, Vec<Diagnostic>> {
    if bytes.len() as u64 > MAX_TENANT_FILE_BYTES {
        return Err(vec![Diagnostic::whole_file(
            file,
            format!("is {} bytes; a tenant file holds at most {} KiB", bytes.len(), MAX_TENANT_FILE_BYTES / 1024),
        )]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(err) => {
            let Position { line, column } = position_of_byte(bytes, err.valid_up_to());
            return Err(vec![Diagnostic::new(file, line, column, "", "the file is not UTF-8 text; save it as UTF-8")]);
        }
    };
    if let Some(Position { line, column }) = yaml::too_deep(text, yaml::MAX_FLOW_DEPTH) {
        let message =
            format!("`[` and `{{` nest deeper than {} here; a tenant file needs two or three", yaml::MAX_FLOW_DEPTH);
        return Err(vec![Diagnostic::new(file, line, column, "", &message)]);
    }
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err((message, pos)) => {
            let Position { line, column } = pos.unwrap_or(Position { line: 1, column: 1 });
            return Err(vec![Diagnostic::new(file, line, column, "", &message)]);
        }
    };
    if yaml::node_count(&doc, yaml::MAX_NODES) > yaml::MAX_NODES {
        return Err(vec![Diagnostic::whole_file(
            file,
            format!("holds more than {} keys and values; a tenant file has about a hundred", yaml::MAX_NODES),
        )]);
    }
    if !doc.is_mapping() {
        let message = if doc.is_null() {
            "the file is empty: a tenant file needs at least `tenant:` and `access:`"
        } else {
            "a tenant file is a mapping with the keys tenant, name, access and triggers"
        };
        return Err(vec![Diagnostic::whole_file(file, message)]);
    }

    let mut problems = Vec::new();
    let mut secrets_seen = Vec::new();
    let mut ctx = ValidateCtx::new(KeyPath::root(), &mut problems, secrets, &mut secrets_seen);
    let top: Option<TenantFile> = ctx.deserialize(&doc);
    if let Some(top) = &top {
        if !valid_tenant_id(stem) {
            ctx.problem_at_key(
                "tenant",
                format!(
                    "the file name `{stem}` is not a valid tenant id: lowercase letters, digits and `-`, at most 63"
                ),
            );
        } else if top.tenant != stem {
            ctx.problem(
                "tenant",
                format!("must equal the file name without its extension: `{stem}` (this file says `{}`)", top.tenant),
            );
        }
    }
    // Triggers are checked even when the top level has a problem, so one mistake does not hide others.
    let triggers = match doc.get("triggers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Mapping(map)) => {
            let mut built = Vec::new();
            for (key, value) in map {
                let Some(key) = key.as_str() else {
                    ctx.problem("triggers", "trigger names are text: account, dialer or provisioning");
                    continue;
                };
                let Some(area) = areas.iter().find(|a| a.key == key) else {
                    let known: Vec<_> =
                        areas.iter().map(|a| format!("{} ({})", a.key, (a.provider_names)().join(", "))).collect();
                    let expected = if known.is_empty() {
                        "this build of patchbay serves no trigger areas yet".to_owned()
                    } else {
                        format!("expected one of: {}", known.join(", "))
                    };
                    ctx.problem_at_key(&format!("triggers.{key}"), format!("unknown trigger `{key}`; {expected}"));
                    continue;
                };
                let mut area_ctx = ctx.child(&format!("triggers.{key}"));
                if let Some(v) = (area.validate)(value, &mut area_ctx) {
                    built.push((area.key, v));
                }
            }
            built
        }
        Some(_) => {
            ctx.problem("triggers", "must be a mapping: account, dialer and/or provisioning");
            Vec::new()
        }
    };
    let vendor_in_flight = top.as_ref().and_then(|t| t.limits.as_ref()).and_then(|l| l.vendor_in_flight);
    if let Some(n) = vendor_in_flight
        && !VENDOR_IN_FLIGHT.contains(&n)
    {
        let (min, max) = (VENDOR_IN_FLIGHT.start(), VENDOR_IN_FLIGHT.end());
        ctx.problem("limits.vendor_in_flight", format!("must be {min}-{max} (is {n})"));
    }
    let declared: Vec<&str> = triggers.iter().map(|(key, _)| *key).collect();
    let events = match top.as_ref().and_then(|t| t.events.as_ref()) {
        Some(file) => super::events::check(file, &declared, &mut ctx.child("events")),
        None => Some(Default::default()),
    };
    drop(ctx);

    match (top, events) {
        (Some(top), Some(events)) if problems.is_empty() => Ok(TenantSpec {
            name: top.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| top.tenant.clone()),
            id: top.tenant,
            tokens: top.access.tokens,
            triggers,
            view: redacted_view(doc.get("triggers"), &secrets_seen),
            secrets_digest: secrets_digest(&secrets_seen),
            vendor_in_flight: vendor_in_flight.map(|n| n as usize),
            events,
        }),
        _ => Err(diagnostics(file, text, problems)),
    }
}

/// Gives each problem a position, in file order; at most [`MAX_PROBLEMS`], then one line that
/// says there are more (validation stops looking once it has found that many).
fn diagnostics(file: &str, text: &str, problems: Vec<Problem>) -> Vec<Diagnostic> {
    let locator = yaml::Locator::new(text);
    let mut out: Vec<Diagnostic> = problems
        .into_iter()
        .map(|p| {
            let Position { line, column } =
                locator.locate(&p.path, p.target).unwrap_or(Position { line: 1, column: 1 });
            Diagnostic::new(file, line, column, &p.path.to_string(), &p.message)
        })
        .collect();
    out.sort_by_key(|d| (d.line, d.column));
    out.dedup();
    if out.len() > MAX_PROBLEMS {
        out.truncate(MAX_PROBLEMS);
        out.push(Diagnostic::whole_file(
            file,
            format!("... and more problems not shown (patchbay stops looking after {MAX_PROBLEMS}): fix these first"),
        ));
    }
    out
}

fn position_of_byte(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    Position { line, column }
}

/// The `triggers` section as JSON, each secret replaced by where it comes from.
fn redacted_view(triggers: Option<&Value>, secrets: &[SecretSeen]) -> serde_json::Value {
    let mut json = triggers.map(to_json).unwrap_or(serde_json::Value::Null);
    for SecretSeen { path, .. } in secrets {
        // Paths are absolute (`triggers.account.password`); the view starts below `triggers`.
        let Some((yaml::Seg::Key(first), rest)) = path.0.split_first() else { continue };
        if first != "triggers" {
            continue;
        }
        let pointer: String = rest
            .iter()
            .map(|seg| match seg {
                yaml::Seg::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                yaml::Seg::Index(i) => format!("/{i}"),
            })
            .collect();
        let Some(node) = json.pointer_mut(&pointer) else { continue };
        if let Some(text) = node.as_str().map(str::to_owned).or_else(|| (!node.is_null()).then(|| node.to_string())) {
            let redacted =
                super::secrets::SecretRef::parse(&text).map(|r| r.redacted()).unwrap_or_else(|_| "<redacted>".into());
            *node = serde_json::Value::String(redacted);
        }
    }
    redact_secret_looking_keys(&mut json);
    json
}

/// A safety net behind the providers' own secret marking (which a provider could miss, e.g. under
/// an alias): a value under a trigger's own key that names a secret is shown only as a reference,
/// never as a literal. Only a trigger's own keys, where credentials live: the settings mappings
/// inside a trigger are shown as written unless their provider marked a value secret
/// (`custom_sip_table.password` is the ID of the CRM's password field, not a password).
fn redact_secret_looking_keys(view: &mut serde_json::Value) {
    const SECRET_WORDS: &[&str] = &["password", "passwd", "secret", "token", "apikey", "api_key", "auth"];
    let Some(triggers) = view.as_object_mut() else { return };
    for trigger in triggers.values_mut() {
        let Some(map) = trigger.as_object_mut() else { continue };
        for (key, value) in map.iter_mut() {
            let lower = key.to_ascii_lowercase();
            let secret_key = SECRET_WORDS.iter().any(|w| lower.contains(w));
            if secret_key && !value.is_object() && !value.is_array() && !value.is_null() && !value.is_boolean() {
                let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
                let shown = match super::secrets::SecretRef::parse(&text) {
                    Ok(r @ (super::secrets::SecretRef::Env { .. } | super::secrets::SecretRef::File(_))) => {
                        r.redacted()
                    }
                    _ => "<redacted>".to_owned(),
                };
                *value = serde_json::Value::String(shown);
            }
        }
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Into::into)
            .or_else(|| n.as_u64().map(Into::into))
            .or_else(|| n.as_f64().and_then(serde_json::Number::from_f64).map(serde_json::Value::Number))
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(seq) => serde_json::Value::Array(seq.iter().map(to_json).collect()),
        Value::Mapping(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => Cow::Borrowed(s.as_str()),
                        other => Cow::Owned(serde_yaml::to_string(other).unwrap_or_default().trim().to_owned()),
                    };
                    (key.into_owned(), to_json(v))
                })
                .collect(),
        ),
        Value::Tagged(t) => to_json(&t.value),
    }
}

/// The JSON Schema of a tenant file, generated from the same types that read it, with each
/// area's providers under `triggers`.
pub fn json_schema(areas: &[&AreaEntry]) -> serde_json::Value {
    let mut generator = SchemaGenerator::default();
    let triggers = triggers_schema(areas, &mut generator);
    let schema = generator.into_root_schema_for::<TenantFile>();
    let mut schema = serde_json::to_value(schema).expect("a schema is JSON");
    schema["properties"]["triggers"] = triggers.into();
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::secrets::SystemSecrets;

    const TOKEN: &str = "sha256:2d7b46a4c2a3e5e0f1d7c1a7c4e1c8e0a0f2b1c3d4e5f60718293a4b5c6d7e8f";

    fn check(stem: &str, text: &str) -> Result<TenantSpec, Vec<Diagnostic>> {
        validate(&format!("providers.d/{stem}.yaml"), stem, text.as_bytes(), &[], &SystemSecrets)
    }

    fn errors(stem: &str, text: &str) -> Vec<String> {
        match check(stem, text) {
            Ok(_) => panic!("expected problems"),
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_minimal_tenant_is_valid() {
        let spec = check("acme", &format!("tenant: acme\naccess:\n  tokens: [\"{TOKEN}\"]\n")).unwrap();
        assert_eq!(spec.id, "acme");
        assert_eq!(spec.name, "acme");
        assert_eq!(spec.tokens.len(), 1);
    }

    #[test]
    fn malformed_yaml_is_one_positioned_diagnostic() {
        let e = errors("acme", "tenant: acme\naccess: {tokens: [\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("providers.d/acme.yaml:3:"), "{}", e[0]);
    }

    #[test]
    fn tenant_must_match_the_file_name() {
        let e = errors("acme", &format!("tenant: other\naccess:\n  tokens: [\"{TOKEN}\"]\n"));
        assert_eq!(
            e,
            [
                "providers.d/acme.yaml:1:9: tenant: must equal the file name without its extension: `acme` (this file says `other`)"
            ]
        );
    }

    #[test]
    fn an_invalid_file_name_is_reported() {
        let e = errors("Acme Corp", &format!("tenant: Acme Corp\naccess:\n  tokens: [\"{TOKEN}\"]\n"));
        assert!(e[0].contains("not a valid tenant id"), "{}", e[0]);
    }

    #[test]
    fn unknown_keys_wrong_types_and_unknown_triggers_are_all_reported() {
        let text = format!(
            "tenant: acme\nacess: x\naccess:\n  tokens: [\"{TOKEN}\"]\ntriggers:\n  billing:\n    provider: x\n"
        );
        let e = errors("acme", &text);
        assert!(e.iter().any(|l| l.starts_with("providers.d/acme.yaml:2:1: acess: unknown field `acess`")), "{e:#?}");
        assert!(
            e.iter().any(|l| l.starts_with("providers.d/acme.yaml:6:3: triggers.billing: unknown trigger `billing`")),
            "{e:#?}"
        );
    }

    #[test]
    fn missing_required_keys_are_named() {
        let e = errors("acme", "tenant: acme\n");
        assert!(e[0].contains("missing field `access`"), "{e:?}");
    }

    #[test]
    fn tokens_must_be_hashes() {
        let e = errors("acme", "tenant: acme\naccess:\n  tokens: [demo-token]\n");
        assert!(e[0].starts_with("providers.d/acme.yaml:3:12: access.tokens[0]: must be `sha256:`"), "{e:?}");
    }

    #[test]
    fn a_file_that_is_not_utf8_says_where() {
        let err = validate("f.yaml", "f", b"tenant: f\nname: caf\xe9\n", &[], &SystemSecrets).err().unwrap();
        assert_eq!(err[0].to_string(), "f.yaml:2:10: the file is not UTF-8 text; save it as UTF-8");
    }

    #[test]
    fn an_empty_file_is_explained() {
        assert!(errors("acme", "")[0].contains("the file is empty"));
    }

    #[test]
    fn values_under_secret_looking_keys_are_redacted_even_when_no_provider_marked_them() {
        let triggers: Value = serde_yaml::from_str(
            "x:\n  AuthToken: hunter2\n  api_password: 1234\n  token_file: ${file:/run/t}\n  username: alice\n  auth_enabled: true\n",
        )
        .unwrap();
        let view = redacted_view(Some(&triggers), &[]);
        assert_eq!(view["x"]["AuthToken"], "<redacted>");
        assert_eq!(view["x"]["api_password"], "<redacted>");
        assert_eq!(view["x"]["token_file"], "${file:/run/t}");
        assert_eq!(view["x"]["username"], "alice");
        assert_eq!(view["x"]["auth_enabled"], true);
    }

    #[test]
    fn a_field_id_under_a_secret_looking_key_of_a_settings_mapping_is_shown() {
        let triggers: Value =
            serde_yaml::from_str("account:\n  password: hunter2\n  custom_sip_table:\n    password: 103\n").unwrap();
        let view = redacted_view(Some(&triggers), &[]);
        assert_eq!(view["account"]["password"], "<redacted>");
        assert_eq!(view["account"]["custom_sip_table"]["password"], 103, "a CRM field id, not a secret");
    }

    #[test]
    fn the_schema_lists_the_top_level_keys() {
        let schema = json_schema(&[]);
        let props = schema["properties"].as_object().unwrap();
        assert!(props.contains_key("tenant") && props.contains_key("access") && props.contains_key("triggers"));
    }
}
