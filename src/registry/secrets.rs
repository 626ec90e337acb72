//! Secrets in tenant files: `${env:NAME}`, `${env:NAME:-default}`, `${file:/path}` or a literal.
//!
//! Tenant files name where a secret comes from; the value stays out of the file, the logs, the
//! errors and RegistryService answers. Resolution is behind [`SecretResolver`], so validation
//! stays pure in tests and `patchbay validate --skip-secrets` can check files on a machine that
//! does not hold the production secrets.

use std::{fmt, path::PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, de};

use super::{
    read::{MAX_SECRET_FILE_BYTES, ReadError, read_regular},
    yaml::ScalarString,
};

/// Where a secret comes from, as written in a tenant file.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env { name: String, default: Option<String> },
    File(PathBuf),
    Literal(String),
}

impl SecretRef {
    /// Parses the text of a secret field. `Err` says what is wrong without quoting a literal.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            if text.contains("${") {
                return Err("a secret reference must be the whole value: ${env:NAME} or ${file:/path}".into());
            }
            return Ok(Self::Literal(text.to_owned()));
        };
        if let Some(spec) = inner.strip_prefix("env:") {
            let (name, default) = match spec.split_once(":-") {
                Some((n, d)) => (n, Some(d.to_owned())),
                None => (spec, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!("`${{{inner}}}`: an environment variable name is letters, digits and _"));
            }
            return Ok(Self::Env { name: name.to_owned(), default });
        }
        if let Some(path) = inner.strip_prefix("file:") {
            if !path.starts_with('/') {
                return Err(format!("`${{{inner}}}`: a secret file path must be absolute"));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        Err(format!("`${{{inner}}}` is not a secret reference: use ${{env:NAME}} or ${{file:/path}}"))
    }

    /// How RegistryService shows this secret: where it comes from, never its value.
    pub fn redacted(&self) -> String {
        match self {
            Self::Env { name, default: None } => format!("${{env:{name}}}"),
            Self::Env { name, default: Some(_) } => format!("${{env:{name}:-<redacted>}}"),
            Self::File(path) => format!("${{file:{}}}", path.display()),
            Self::Literal(_) => "<redacted>".into(),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let ScalarString(text) = ScalarString::deserialize(de)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number"],
            "description": "A secret: `${env:NAME}`, `${env:NAME:-default}`, `${file:/absolute/path}`, or a literal value (discouraged: keep secrets out of files).",
            "examples": ["${env:ACME_ALIANZA_PASSWORD}", "${file:/run/secrets/acme-alianza}"]
        })
    }
}

/// Turns a [`SecretRef`] into its value. `Err` is a message for an operator; it never holds the value.
pub trait SecretResolver: Send + Sync {
    fn resolve(&self, secret: &SecretRef) -> Result<SecretString, String>;

    /// Whether the values of `${env:}` / `${file:}` references are really read, so that their
    /// rules (length, characters) can be checked. `false` for `validate --skip-secrets`.
    fn reads_references(&self) -> bool {
        true
    }
}

/// The process environment and the file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemSecrets;

impl SecretResolver for SystemSecrets {
    fn resolve(&self, secret: &SecretRef) -> Result<SecretString, String> {
        match secret {
            SecretRef::Literal(v) => Ok(v.clone().into()),
            SecretRef::Env { name, default } => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v.into()),
                Ok(_) | Err(std::env::VarError::NotPresent) => match default {
                    Some(d) => Ok(d.clone().into()),
                    None => Err(format!("environment variable `{name}` is not set")),
                },
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable `{name}` is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => match read_regular(path, MAX_SECRET_FILE_BYTES) {
                // Secret files usually end with a newline that is not part of the secret.
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(v) => Ok(v.trim_end_matches(['\n', '\r']).to_owned().into()),
                    Err(_) => Err(format!("cannot read secret file `{}`: not UTF-8 text", path.display())),
                },
                Err(ReadError::Gone) => Err(format!("cannot read secret file `{}`: no such file", path.display())),
                Err(ReadError::Unreadable(why)) => Err(format!("secret file `{}` {why}", path.display())),
            },
        }
    }
}

/// Checks reference syntax only and resolves nothing: `patchbay validate --skip-secrets`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SkipSecrets;

impl SecretResolver for SkipSecrets {
    /// A literal is what it says (and is checked); a reference is not read.
    fn resolve(&self, secret: &SecretRef) -> Result<SecretString, String> {
        match secret {
            SecretRef::Literal(value) => Ok(value.clone().into()),
            _ => Ok(String::new().into()),
        }
    }

    fn reads_references(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(
            SecretRef::parse("${env:ACME_PASS}").unwrap(),
            SecretRef::Env { name: "ACME_PASS".into(), default: None }
        );
        assert_eq!(
            SecretRef::parse("${env:ACME_PASS:-sim}").unwrap(),
            SecretRef::Env { name: "ACME_PASS".into(), default: Some("sim".into()) }
        );
        assert_eq!(SecretRef::parse("${file:/run/s}").unwrap(), SecretRef::File("/run/s".into()));
        assert_eq!(SecretRef::parse("hunter2").unwrap(), SecretRef::Literal("hunter2".into()));
    }

    #[test]
    fn malformed_references_are_rejected_with_the_rule() {
        assert!(SecretRef::parse("${vault:x}").unwrap_err().contains("${env:NAME}"));
        assert!(SecretRef::parse("${file:relative}").unwrap_err().contains("absolute"));
        assert!(SecretRef::parse("${env:}").unwrap_err().contains("letters, digits"));
        assert!(SecretRef::parse("pre${env:X}").unwrap_err().contains("whole value"));
    }

    #[test]
    fn debug_and_redacted_never_show_a_literal() {
        let s = SecretRef::parse("hunter2").unwrap();
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert!(!SecretRef::parse("${env:X:-hunter2}").unwrap().redacted().contains("hunter2"));
    }

    #[test]
    fn unset_env_uses_the_default_or_names_the_variable() {
        let unset = "PATCHBAY_TEST_SURELY_UNSET_VARIABLE";
        let with_default = SecretRef::Env { name: unset.into(), default: Some("d".into()) };
        assert_eq!(SystemSecrets.resolve(&with_default).unwrap().expose_secret(), "d");
        let without = SecretRef::Env { name: unset.into(), default: None };
        assert_eq!(SystemSecrets.resolve(&without).unwrap_err(), format!("environment variable `{unset}` is not set"));
    }

    #[test]
    fn file_secrets_drop_the_trailing_newline_and_name_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(SystemSecrets.resolve(&SecretRef::File(path)).unwrap().expose_secret(), "s3cret");
        let err = SystemSecrets.resolve(&SecretRef::File("/nonexistent/s".into())).unwrap_err();
        assert_eq!(err, "cannot read secret file `/nonexistent/s`: no such file");
    }

    #[test]
    fn numbers_are_read_as_literal_text() {
        let s: SecretRef = serde_yaml::from_str("1234").unwrap();
        assert_eq!(s, SecretRef::Literal("1234".into()));
    }
}
