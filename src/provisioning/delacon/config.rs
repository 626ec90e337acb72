//! The `triggers.provisioning` keys of a tenant on Delacon, their pure validation and the build
//! of the client (or of the in-process simulator for `api_url: simulator`).

use std::{sync::Arc, time::Duration};

use reqwest::Url;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::client::DelaconClient;
use crate::{
    provisioning::trigger::ProvisioningTrigger,
    registry::{
        provider::{BuildDeps, BuildTrigger, ValidateCtx, key_as_written, simulator_allowed},
        secrets::SecretRef,
        yaml::Value,
    },
};

/// The shortest callback secret accepted: it is the only credential of the callback URL.
pub const MIN_CALLBACK_SECRET: usize = 24;
const DEFAULT_TIMEOUT_MS: u64 = 20_000;

/// Phone-number orders through the Delacon Provisioning API.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "provisioning: delacon", extend("additionalProperties" = false), transform = alias_schema)]
pub struct DelaconConfig {
    /// `delacon`.
    #[allow(dead_code)] // read by the registry to pick this provider
    pub provider: String,
    /// `false` keeps the settings but makes every ProvisioningService call FAILED_PRECONDITION
    /// (reason TRIGGER_DISABLED). Callbacks for orders already placed are still received.
    #[serde(default = "yes")]
    #[allow(dead_code)] // read by the registry
    pub enabled: bool,
    /// `simulator` (patchbay's built-in Delacon simulator, for demos and tests), or the API's
    /// base URL: `https://pla.delaconcorp.com/rest/config`. Plain `http://` only to a loopback
    /// address (a local simulator).
    pub api_url: String,
    /// The Delacon Provisioning API key (generated in the Delacon portal), sent as the `Auth`
    /// header. A secret: `${env:NAME}` or `${file:/path}`.
    #[serde(alias = "AuthToken")]
    pub auth_token: SecretRef,
    /// The secret part of the callback URL to configure in the Delacon portal:
    /// `<public URL>/callbacks/delacon/<tenant>/<callback_secret>`. At least 24 characters of
    /// letters, digits, `-`, `_`, `.` and `~` (e.g. `openssl rand -hex 24`). A secret.
    pub callback_secret: SecretRef,
    /// How long one Delacon request may take, in milliseconds (100-120000, default 20000). An
    /// order that times out is not sent again: its outcome is unknown.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

/// The schema accepts the portal's name `AuthToken` as well as `auth_token` (one of them is
/// required), as validation does; otherwise editors would flag a file that patchbay accepts.
fn alias_schema(schema: &mut schemars::Schema) {
    use serde_json::{Value as Json, json};
    let (canonical, alias) = ("auth_token", "AuthToken");
    if let Some(Json::Object(props)) = schema.get_mut("properties")
        && let Some(mut prop) = props.get(canonical).cloned()
    {
        if let Json::Object(p) = &mut prop {
            p.insert("description".into(), json!(format!("The Delacon portal's name for `{canonical}`.")));
        }
        props.insert(alias.to_owned(), prop);
    }
    if let Some(Json::Array(required)) = schema.get_mut("required") {
        required.retain(|r| r != canonical);
    }
    schema.insert("oneOf".into(), json!([{ "required": [canonical] }, { "required": [alias] }]));
}

/// Where the client goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Simulator,
    Url(Url),
}

/// A checked Delacon trigger, ready to build.
struct Validated {
    endpoint: Endpoint,
    auth_token: SecretString,
    callback_secret: SecretString,
    timeout: Duration,
}

/// The registry's `validate` for `provider: delacon`: pure, every problem recorded.
pub fn validate(value: &Value, ctx: &mut ValidateCtx<'_>) -> Option<Box<dyn BuildTrigger<ProvisioningTrigger>>> {
    let config: DelaconConfig = ctx.deserialize(value)?;
    let before = ctx.problem_count();
    let endpoint = match parse_api_url(&config.api_url) {
        Ok(Endpoint::Simulator) => simulator_allowed(ctx, "api_url").then_some(Endpoint::Simulator),
        Ok(e) => Some(e),
        Err(message) => {
            ctx.problem("api_url", message);
            None
        }
    };
    // The key as the operator wrote it (the portal's name `AuthToken` is an alias): RegistryService
    // redacts the secret under that key, and diagnostics point at it.
    let auth_key = key_as_written(value, "auth_token", "AuthToken");
    let auth_token = ctx.secret_checked(auth_key, &config.auth_token, |t| {
        if t.is_empty() {
            Err("must not be empty: the API key from the Delacon portal".into())
        } else if !t.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            // It travels as an HTTP header value.
            Err("must be printable ASCII without spaces (it is sent as the `Auth` header)".into())
        } else {
            Ok(())
        }
    });
    let callback_secret = ctx.secret_checked("callback_secret", &config.callback_secret, check_callback_secret);
    let timeout_ms = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(100..=120_000).contains(&timeout_ms) {
        ctx.problem("timeout_ms", "must be 100-120000 (milliseconds)");
    }
    if ctx.problem_count() > before {
        return None;
    }
    Some(Box::new(Validated {
        endpoint: endpoint?,
        auth_token: auth_token?,
        callback_secret: callback_secret?,
        timeout: Duration::from_millis(timeout_ms),
    }))
}

fn parse_api_url(text: &str) -> Result<Endpoint, String> {
    if text == "simulator" {
        return Ok(Endpoint::Simulator);
    }
    let expected = "`simulator` or the API's https URL, e.g. https://pla.delaconcorp.com/rest/config";
    let url = Url::parse(text).map_err(|e| format!("not a URL ({e}): expected {expected}"))?;
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(format!("must use https (plain http only to a loopback address): expected {expected}")),
        other => return Err(format!("unsupported scheme `{other}`: expected {expected}")),
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "must be a plain base URL with a host and no query, fragment or user: expected {expected}"
        ));
    }
    Ok(Endpoint::Url(url))
}

/// The rule for callback secrets. The message never quotes the value.
fn check_callback_secret(secret: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    if secret.chars().count() < MIN_CALLBACK_SECRET {
        return Err(format!(
            "too short: at least {MIN_CALLBACK_SECRET} characters (it is the callback URL's only credential; \
             e.g. `openssl rand -hex 24`)"
        ));
    }
    if !secret.chars().all(allowed) {
        return Err("only letters, digits, `-`, `_`, `.` and `~` (it is part of a URL path)".into());
    }
    Ok(())
}

impl BuildTrigger<ProvisioningTrigger> for Validated {
    fn build(&self, deps: &BuildDeps) -> anyhow::Result<ProvisioningTrigger> {
        let base = match &self.endpoint {
            Endpoint::Url(url) => url.clone(),
            #[cfg(not(feature = "simulators"))]
            Endpoint::Simulator => anyhow::bail!("this build of patchbay has no simulators"),
            #[cfg(feature = "simulators")]
            Endpoint::Simulator => {
                use secrecy::ExposeSecret;
                let sim = deps.sims.get_or_start(|| super::sim::DelaconSim::start_demo(([127, 0, 0, 1], 0).into()))?;
                // Delacon calls back the URL configured for the API key; the built-in simulator
                // is configured here with this server's own callback URL for the tenant.
                let callback = format!(
                    "{}{}/{}/{}",
                    deps.http_base_url.trim_end_matches('/'),
                    super::callback::CALLBACK_PREFIX,
                    deps.tenant,
                    self.callback_secret.expose_secret()
                );
                sim.add_partner(self.auth_token.expose_secret(), Some(callback));
                Url::parse(&sim.url())?
            }
        };
        let client =
            DelaconClient::new(deps.vendor_http(super::client::PROVIDER), base, &self.auth_token, self.timeout)?;
        Ok(ProvisioningTrigger::new(Arc::new(client), self.callback_secret.clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::{file, secrets::SystemSecrets};

    const TOKEN: &str = "sha256:2d7b46a4c2a3e5e0f1d7c1a7c4e1c8e0a0f2b1c3d4e5f60718293a4b5c6d7e8f";

    fn check(trigger: &str) -> Result<(), Vec<String>> {
        let text = format!("tenant: acme\naccess:\n  tokens: [\"{TOKEN}\"]\ntriggers:\n  provisioning:\n{trigger}");
        file::validate(
            "providers.d/acme.yaml",
            "acme",
            text.as_bytes(),
            &[&crate::provisioning::TRIGGERS],
            &SystemSecrets,
        )
        .map(|_| ())
        .map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    const GOOD: &str = "    provider: delacon\n    api_url: https://pla.delaconcorp.com/rest/config\n    auth_token: key-123\n    callback_secret: 0123456789abcdef0123456789abcdef\n";

    #[test]
    fn a_complete_trigger_is_valid() {
        check(GOOD).unwrap();
        check(&GOOD.replace("https://pla.delaconcorp.com/rest/config", "simulator")).unwrap();
        check(&GOOD.replace("https://pla.delaconcorp.com/rest/config", "http://127.0.0.1:9999")).unwrap();
        check(&GOOD.replace("auth_token", "AuthToken")).unwrap();
    }

    #[test]
    fn a_short_callback_secret_is_refused_at_its_position_without_echoing_it() {
        let e = check(&GOOD.replace("0123456789abcdef0123456789abcdef", "short-secret")).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("providers.d/acme.yaml:9:22: triggers.provisioning.callback_secret: too short"),
            "{e:?}"
        );
        assert!(!e[0].contains("short-secret"), "{e:?}");
    }

    #[test]
    fn a_callback_secret_that_cannot_sit_in_a_url_path_is_refused() {
        let e =
            check(&GOOD.replace("0123456789abcdef0123456789abcdef", "0123456789abcdef/0123456789abcdef")).unwrap_err();
        assert!(e[0].contains("callback_secret: only letters, digits"), "{e:?}");
    }

    #[test]
    fn plain_http_to_a_remote_host_and_other_schemes_are_refused() {
        let e = check(&GOOD.replace("https://pla.delaconcorp.com/rest/config", "http://pla.delaconcorp.com/rest"))
            .unwrap_err();
        assert!(e[0].starts_with("providers.d/acme.yaml:7:14: triggers.provisioning.api_url: must use https"), "{e:?}");
        let e = check(&GOOD.replace("https://pla.delaconcorp.com/rest/config", "ftp://x")).unwrap_err();
        assert!(e[0].contains("unsupported scheme `ftp`"), "{e:?}");
        let e = check(&GOOD.replace("https://pla.delaconcorp.com/rest/config", "delacon")).unwrap_err();
        assert!(e[0].contains("api_url: not a URL"), "{e:?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = "    provider: delacon\n    api_url: ftp://x\n    auth_token: \"\"\n    callback_secret: abc\n    timeout_ms: 5\n    retries: 3\n";
        let e = check(text).unwrap_err();
        let has = |needle: &str| e.iter().any(|l| l.contains(needle));
        assert!(has("acme.yaml:11:5: triggers.provisioning.retries: unknown field `retries`"), "{e:#?}");
        // The unknown key stops serde before the values are checked; fix it and the rest show.
        let e = check(&text.replace("    retries: 3\n", "")).unwrap_err();
        let has = |needle: &str| e.iter().any(|l| l.contains(needle));
        assert!(has("acme.yaml:7:14: triggers.provisioning.api_url: unsupported scheme"), "{e:#?}");
        assert!(has("acme.yaml:8:17: triggers.provisioning.auth_token: must not be empty"), "{e:#?}");
        assert!(has("acme.yaml:9:22: triggers.provisioning.callback_secret: too short"), "{e:#?}");
        assert!(has("acme.yaml:10:17: triggers.provisioning.timeout_ms: must be 100-120000"), "{e:#?}");
    }

    #[test]
    fn missing_keys_are_named() {
        let e = check("    provider: delacon\n    api_url: simulator\n").unwrap_err();
        assert!(e.iter().any(|l| l.contains("missing field `auth_token`")), "{e:?}");
    }

    #[test]
    fn secrets_may_come_from_the_environment_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        let text = GOOD.replace("0123456789abcdef0123456789abcdef", &format!("${{file:{}}}", path.display()));
        check(&text).unwrap();
        let e = check(&GOOD.replace("key-123", "${env:PATCHBAY_TEST_SURELY_UNSET_DELACON_KEY}")).unwrap_err();
        assert!(e[0].contains("auth_token: environment variable"), "{e:?}");
    }

    #[test]
    fn the_schema_accepts_the_api_key_under_its_alias() {
        let schema = serde_json::to_value(schemars::schema_for!(super::DelaconConfig)).unwrap();
        assert!(schema["properties"]["AuthToken"].is_object(), "{schema:#}");
        assert!(!schema["required"].as_array().unwrap().iter().any(|r| r == "auth_token"), "{schema:#}");
        assert_eq!(schema["oneOf"][1]["required"][0], "AuthToken");
    }

    #[test]
    fn problems_with_the_api_key_point_at_the_key_as_written_when_it_is_the_alias() {
        let aliased = GOOD.replace("auth_token", "AuthToken");
        let e = check(&aliased.replace("key-123", "${env:PATCHBAY_TEST_SURELY_UNSET_DELACON_KEY}")).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("providers.d/acme.yaml:8:16: triggers.provisioning.AuthToken: environment variable"),
            "{e:?}"
        );
        let e = check(&aliased.replace("key-123", "\"key 123\"")).unwrap_err();
        assert!(e[0].contains("triggers.provisioning.AuthToken: must be printable ASCII"), "{e:?}");
    }
}
