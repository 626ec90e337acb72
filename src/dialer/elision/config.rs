//! `triggers.dialer` with `provider: elision`: its keys (the operators' manual), their pure
//! validation, and the build of the client.

use std::sync::Arc;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::client::ElisionClient;
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

/// The Elision dialer (a VICIdial-family "non-agent API"): agents, lists and lead export.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "dialer: elision", extend("additionalProperties" = false))]
pub struct ElisionConfig {
    /// `elision`.
    #[schemars(extend("const" = "elision"))]
    pub provider: String,
    /// Default true. `false` keeps the settings but makes DialerService calls FAILED_PRECONDITION
    /// (reason TRIGGER_DISABLED).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The dialer's API script, e.g. `http://dialer.example.net/dialer/elision_api.php`, or
    /// `simulator` for patchbay's built-in Elision simulator (demo data: API user `api` / `1234`).
    /// No `user:pass@` (the API user goes in `username` and `password`, which are kept secret;
    /// a URL is shown in messages) and no `?query` or `#fragment` (the dialer reads parameters
    /// from the query string before the form body, so they would override patchbay's).
    pub api_url: String,
    /// The `source` sent with every call: names this integration in the dialer's logs. 2-20 characters.
    pub source: String,
    /// The dialer API user's login. It needs user level 8 or higher (and above the levels of the
    /// agents it creates), and the "modify users", "modify lists" and "modify leads" permissions.
    pub username: SecretRef,
    /// The dialer API user's password. Letters, digits, `-` and `_` only: the dialer silently
    /// drops any other character before comparing, so such a password could never log in.
    pub password: SecretRef,
}

/// A validated trigger, ready to build.
struct ElisionBuild {
    endpoint: Endpoint,
    source: String,
    username: SecretString,
    password: SecretString,
}

/// Pure validation of `triggers.dialer` (its secrets resolved through the context).
pub fn validate(value: &Value, ctx: &mut ValidateCtx<'_>) -> Option<Box<dyn BuildTrigger<Arc<dyn DialerProvider>>>> {
    let cfg: ElisionConfig = ctx.deserialize(value)?;
    let before = ctx.problem_count();
    let endpoint = endpoint::validate(ctx, &cfg.api_url, "http://dialer.example.net/dialer/elision_api.php");
    let source_len = cfg.source.chars().count();
    if !(2..=20).contains(&source_len) || cfg.source.chars().any(char::is_control) {
        ctx.problem("source", format!("must be 2-20 printable characters (has {source_len})"));
    }
    // The dialer strips any other character before comparing: such a login can never succeed.
    let username = ctx.secret_checked("username", &cfg.username, |v| secret_login_chars_problem(v).map_or(Ok(()), Err));
    let password = ctx.secret_checked("password", &cfg.password, |v| secret_login_chars_problem(v).map_or(Ok(()), Err));
    if ctx.problem_count() > before {
        return None;
    }
    Some(Box::new(ElisionBuild { endpoint: endpoint?, source: cfg.source, username: username?, password: password? }))
}

impl BuildTrigger<Arc<dyn DialerProvider>> for ElisionBuild {
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
                let sim = deps.sims.get_or_start(|| super::sim::ElisionSim::start(([127, 0, 0, 1], 0).into()))?;
                sim.url().parse()?
            }
        };
        Ok(Arc::new(
            ElisionClient::new(
                deps.vendor_http(super::client::PROVIDER),
                endpoint,
                self.source.clone(),
                self.username.clone(),
                self.password.clone(),
            )
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
            "    provider: elision\n    enabled: true\n    api_url: http://dialer.example.net/dialer/elision_api.php\n    \
             source: crm\n    username: api\n    password: ${env:PATCHBAY_TEST_UNSET_DIALER_PASS:-1234}\n",
        )
        .unwrap();
        check("    provider: elision\n    api_url: simulator\n    source: crm\n    username: api\n    password: x\n")
            .unwrap();
    }

    #[test]
    fn a_bad_url_and_a_short_source_are_reported_together_with_positions() {
        let e = check(
            "    provider: elision\n    api_url: ftp://dialer\n    source: c\n    username: api\n    password: x\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].starts_with("providers.d/acme.yaml:7:14: triggers.dialer.api_url: must be `simulator`"), "{e:#?}");
        assert!(e[1].starts_with("providers.d/acme.yaml:8:13: triggers.dialer.source: must be 2-20"), "{e:#?}");
    }

    #[test]
    fn an_api_url_with_credentials_is_refused_without_quoting_them() {
        for url in [
            "http://api:s3cretpw@dialer.example.net/dialer/elision_api.php",
            "https://api@dialer.example.net/dialer/elision_api.php",
            "http://:s3cretpw@dialer.example.net/dialer/elision_api.php",
        ] {
            let e = check(&format!(
                "    provider: elision\n    api_url: {url}\n    source: crm\n    username: api\n    password: x\n"
            ))
            .unwrap_err();
            assert_eq!(e.len(), 1, "{e:#?}");
            assert!(
                e[0].starts_with(
                    "providers.d/acme.yaml:7:14: triggers.dialer.api_url: must not hold a user name or password"
                ),
                "{e:#?}"
            );
            assert!(!e[0].contains("s3cretpw") && !e[0].contains("dialer.example.net"), "{e:#?}");
        }
    }

    #[test]
    fn an_api_url_with_a_query_or_fragment_is_refused() {
        for url in [
            "http://dialer.example.net/dialer/elision_api.php?function=add_user",
            "http://dialer.example.net/dialer/elision_api.php?",
            "http://dialer.example.net/dialer/elision_api.php#x",
        ] {
            let e = check(&format!(
                "    provider: elision\n    api_url: \"{url}\"\n    source: crm\n    username: api\n    password: x\n"
            ))
            .unwrap_err();
            assert_eq!(e.len(), 1, "{e:#?}");
            assert!(e[0].contains("triggers.dialer.api_url: must not have a query string or fragment"), "{e:#?}");
        }
    }

    #[test]
    fn a_long_source_is_refused() {
        let e = check(&format!(
            "    provider: elision\n    api_url: simulator\n    source: {}\n    username: api\n    password: x\n",
            "s".repeat(21)
        ))
        .unwrap_err();
        assert!(e[0].contains("triggers.dialer.source: must be 2-20 printable characters (has 21)"), "{e:#?}");
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let e = check(
            "    provider: elision\n    api_url: simulator\n    sourse: crm\n    username: api\n    password: x\n",
        )
        .unwrap_err();
        assert!(
            e.iter().any(|l| l.starts_with("providers.d/acme.yaml:8:5: triggers.dialer.sourse: unknown field")),
            "{e:#?}"
        );
        let e = check("    provider: elision\n    api_url: simulator\n    source: crm\n    password: x\n").unwrap_err();
        assert!(e.iter().any(|l| l.contains("missing field `username`")), "{e:#?}");
    }

    #[test]
    fn an_api_login_with_characters_the_dialer_strips_is_refused_without_quoting_it() {
        for (key, line) in [
            ("username", "    username: \"api user\"\n    password: x\n"),
            ("password", "    username: api\n    password: \"p@ss!\"\n"),
        ] {
            let e =
                check(&format!("    provider: elision\n    api_url: simulator\n    source: crm\n{line}")).unwrap_err();
            assert!(
                e.iter()
                    .any(|l| l.contains(&format!("triggers.dialer.{key}: may hold only letters A-Z and a-z, digits"))),
                "{key}: {e:#?}"
            );
            assert!(!e.iter().any(|l| l.contains("p@ss") || l.contains("api user")), "never quoted: {e:#?}");
        }
    }

    #[test]
    fn an_unset_secret_is_reported_without_a_value() {
        let e = check(
            "    provider: elision\n    api_url: simulator\n    source: crm\n    username: api\n    \
             password: ${env:PATCHBAY_TEST_SURELY_UNSET_DIALER_PASS}\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "providers.d/acme.yaml:10:15: triggers.dialer.password: environment variable `PATCHBAY_TEST_SURELY_UNSET_DIALER_PASS` is not set"
            ]
        );
    }

    #[test]
    fn the_commented_example_in_acme_yaml_is_valid_once_uncommented() {
        let example = include_str!("../../../providers.d/examples/acme.yaml");
        let block: String = example
            .lines()
            .skip_while(|l| *l != "  # dialer:")
            .take_while(|l| l.starts_with("  # "))
            .map(|l| format!("  {}\n", &l[4..]))
            .collect();
        assert!(block.contains("provider: elision"), "{block}");
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
        let e = check("    provider: elisoin\n").unwrap_err();
        assert!(
            e[0].contains("unknown dialer provider `elisoin`: this build of patchbay has elision, vicidial"),
            "{e:#?}"
        );
    }
}
