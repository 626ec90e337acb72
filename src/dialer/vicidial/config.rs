//! `triggers.dialer` with `provider: vicidial`: its keys (the operators' manual), their pure
//! validation, and the build of the client.

use std::sync::Arc;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::client::{DEFAULT_EXPORT_CONCURRENCY, MAX_EXPORT_CONCURRENCY, VicidialClient};
use crate::{
    dialer::{
        provider::DialerProvider,
        vicidial_family::{
            endpoint::{self, Endpoint},
            fields::secret_login_chars_problem,
        },
    },
    registry::{
        BuildDeps,
        provider::{BuildTrigger, ValidateCtx},
        secrets::SecretRef,
        yaml::Value,
    },
};

/// List ids `known_list_ids` may name, at most (ListActiveLists reads each one).
pub const MAX_KNOWN_LIST_IDS: usize = 200;

/// Stock VICIdial's non-agent API (`non_agent_api.php`): agents, lists and lead export.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "dialer: vicidial", extend("additionalProperties" = false))]
pub struct VicidialConfig {
    /// `vicidial`.
    #[schemars(extend("const" = "vicidial"))]
    pub provider: String,
    /// Default true. `false` keeps the settings but makes DialerService calls FAILED_PRECONDITION
    /// (reason TRIGGER_DISABLED).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The non-agent API script, e.g. `https://dialer.example.net/vicidial/non_agent_api.php`
    /// (stock installs serve it at `/vicidial/non_agent_api.php`), or `simulator` for patchbay's
    /// built-in VICIdial simulator (demo data: API user `api` / `1234`). No `user:pass@` and no
    /// `?query` or `#fragment` (VICIdial reads parameters from the query string before the body).
    pub api_url: String,
    /// The `source` sent with every call: names this integration in VICIdial's logs. At least 2
    /// letters or digits, and nothing else (VICIdial strips every other character, then refuses
    /// fewer than 2).
    pub source: String,
    /// The API user's login. It needs user level 8 or higher (above the agents it creates), "API
    /// access", and the "modify users", "delete users" (for DeleteAgent), "modify lists" and
    /// "modify leads" permissions; "view reports" for campaigns_list.
    pub username: SecretRef,
    /// The API user's password. Letters, digits, `-` and `_` only: VICIdial drops any other
    /// character before comparing, so such a password could never log in.
    pub password: SecretRef,
    /// Lists made outside patchbay (in VICIdial's admin pages) that ListActiveLists should show:
    /// stock VICIdial cannot list its lists, so patchbay reads those it knows (the lists it
    /// created or exported to, and these) one by one. At most 200 ids of 2-14 digits.
    #[serde(default)]
    pub known_list_ids: Vec<String>,
    /// add_lead calls in flight at once during an export, 1-9 (default 8). Each lead is one
    /// call, so an export of N leads takes about N x (the dialer's time per call) / this. At
    /// most 9: with every call logging in, ten calls refused at once would lock the API user.
    #[serde(default)]
    pub export_concurrency: Option<usize>,
}

/// A validated trigger, ready to build.
struct VicidialBuild {
    endpoint: Endpoint,
    source: String,
    username: SecretString,
    password: SecretString,
    known_list_ids: Vec<String>,
    export_concurrency: usize,
}

/// Pure validation of `triggers.dialer` (its secrets resolved through the context).
pub fn validate(value: &Value, ctx: &mut ValidateCtx<'_>) -> Option<Box<dyn BuildTrigger<Arc<dyn DialerProvider>>>> {
    let cfg: VicidialConfig = ctx.deserialize(value)?;
    let before = ctx.problem_count();
    let endpoint = endpoint::validate(ctx, &cfg.api_url, "https://dialer.example.net/vicidial/non_agent_api.php");
    if cfg.source.chars().count() < 2 || !cfg.source.bytes().all(|b| b.is_ascii_alphanumeric()) {
        ctx.problem(
            "source",
            "must be 2 or more letters A-Z and a-z or digits, and nothing else (VICIdial strips every other \
             character, then refuses a source of fewer than 2)",
        );
    }
    let username = ctx.secret_checked("username", &cfg.username, |v| secret_login_chars_problem(v).map_or(Ok(()), Err));
    let password = ctx.secret_checked("password", &cfg.password, |v| secret_login_chars_problem(v).map_or(Ok(()), Err));
    if cfg.known_list_ids.len() > MAX_KNOWN_LIST_IDS {
        ctx.problem(
            "known_list_ids",
            format!(
                "names {} lists; at most {MAX_KNOWN_LIST_IDS} (ListActiveLists reads each one)",
                cfg.known_list_ids.len()
            ),
        );
    }
    for (i, id) in cfg.known_list_ids.iter().enumerate() {
        if !(2..=14).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_digit()) {
            ctx.problem(&format!("known_list_ids[{i}]"), "must be a list id of 2-14 digits");
        }
    }
    let concurrency = cfg.export_concurrency.unwrap_or(DEFAULT_EXPORT_CONCURRENCY);
    if !(1..=MAX_EXPORT_CONCURRENCY).contains(&concurrency) {
        ctx.problem(
            "export_concurrency",
            format!(
                "must be 1-{MAX_EXPORT_CONCURRENCY} (is {concurrency}): every call logs in, and ten refused at once \
                 would lock the API user"
            ),
        );
    }
    if ctx.problem_count() > before {
        return None;
    }
    Some(Box::new(VicidialBuild {
        endpoint: endpoint?,
        source: cfg.source,
        username: username?,
        password: password?,
        known_list_ids: cfg.known_list_ids,
        export_concurrency: concurrency,
    }))
}

impl BuildTrigger<Arc<dyn DialerProvider>> for VicidialBuild {
    fn build(&self, deps: &BuildDeps) -> anyhow::Result<Arc<dyn DialerProvider>> {
        let endpoint = match &self.endpoint {
            Endpoint::Url(u) => u.clone(),
            #[cfg(not(feature = "simulators"))]
            Endpoint::Simulator => anyhow::bail!("this build of patchbay has no simulators"),
            #[cfg(feature = "simulators")]
            Endpoint::Simulator => {
                anyhow::ensure!(
                    tokio::runtime::Handle::try_current().is_ok(),
                    "the built-in simulator needs the server's runtime"
                );
                let sim = deps.sims.get_or_start(|| super::sim::VicidialSim::start(([127, 0, 0, 1], 0).into()))?;
                sim.url().parse()?
            }
        };
        Ok(Arc::new(
            VicidialClient::new(
                deps.vendor_http(super::client::PROVIDER),
                endpoint,
                self.source.clone(),
                self.username.clone(),
                self.password.clone(),
            )
            .with_known_lists(self.known_list_ids.clone())
            .with_export_concurrency(self.export_concurrency)
            .with_full_reloads(Arc::clone(&deps.full_reloads)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::{file, secrets::SystemSecrets};

    const TOKEN: &str = "sha256:2d7b46a4c2a3e5e0f1d7c1a7c4e1c8e0a0f2b1c3d4e5f60718293a4b5c6d7e8f";

    fn check(dialer: &str) -> Result<(), Vec<String>> {
        let text = format!("tenant: acme\naccess:\n  tokens: [\"{TOKEN}\"]\ntriggers:\n  dialer:\n{dialer}");
        file::validate("providers.d/acme.yaml", "acme", text.as_bytes(), &[&crate::dialer::TRIGGERS], &SystemSecrets)
            .map(|_| ())
            .map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_documented_keys_are_valid() {
        check(
            "    provider: vicidial\n    api_url: https://dialer.example.net/vicidial/non_agent_api.php\n    \
             source: crm\n    username: api\n    password: x1\n    known_list_ids: [\"1101\", \"20042018\"]\n    \
             export_concurrency: 9\n",
        )
        .unwrap();
        check("    provider: vicidial\n    api_url: simulator\n    source: crmsync2024withalongname\n    username: api\n    password: x\n")
            .unwrap();
    }

    #[test]
    fn a_source_vicidial_would_strip_and_a_bad_concurrency_and_list_id_are_named() {
        let e = check(
            "    provider: vicidial\n    api_url: simulator\n    source: crm-sync\n    username: api\n    password: x\n    \
             known_list_ids: [\"1101\", \"ab\"]\n    export_concurrency: 10\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].contains("triggers.dialer.source: must be 2 or more letters"), "{e:#?}");
        assert!(e.iter().any(|l| l.contains("triggers.dialer.known_list_ids[1]: must be a list id")), "{e:#?}");
        assert!(e.iter().any(|l| l.contains("triggers.dialer.export_concurrency: must be 1-9 (is 10)")), "{e:#?}");
    }

    #[test]
    fn an_api_url_with_credentials_is_refused_without_quoting_them() {
        let e = check(
            "    provider: vicidial\n    api_url: http://api:s3cretpw@dialer.example.net/vicidial/non_agent_api.php\n    \
             source: crm\n    username: api\n    password: x\n",
        )
        .unwrap_err();
        assert!(e[0].contains("triggers.dialer.api_url: must not hold a user name or password"), "{e:#?}");
        assert!(!e[0].contains("s3cretpw"), "{e:#?}");
    }

    #[test]
    fn the_commented_example_in_acme_yaml_is_valid_once_uncommented() {
        let example = include_str!("../../../providers.d/examples/acme.yaml");
        let block: String = example
            .lines()
            .skip_while(|l| !l.contains("on stock VICIdial"))
            .skip_while(|l| *l != "  # dialer:")
            .take_while(|l| l.starts_with("  # "))
            .map(|l| format!("  {}\n", &l[4..]))
            .collect();
        assert!(block.contains("provider: vicidial"), "{block}");
        let text = format!("tenant: acme\naccess:\n  tokens: [\"{TOKEN}\"]\ntriggers:\n{block}");
        let checked = file::validate(
            "acme.yaml",
            "acme",
            text.as_bytes(),
            &[&crate::dialer::TRIGGERS],
            &crate::registry::secrets::SkipSecrets,
        );
        assert!(checked.is_ok(), "{:?}", checked.err());
    }

    #[test]
    fn an_unknown_provider_lists_both_dialers() {
        let e = check("    provider: vici\n").unwrap_err();
        assert!(
            e[0].contains("unknown dialer provider `vici`: this build of patchbay has elision, vicidial"),
            "{e:#?}"
        );
    }
}
