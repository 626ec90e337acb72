//! The characters the family keeps. The dialer strips every other character from these
//! parameters before any check, without a word (`p@ss!` is stored, or compared, as `pss`; an API
//! password with other characters can never log in). patchbay refuses such values before the
//! call instead, naming the field and what it may hold, so that nothing is changed behind the
//! caller's back.

/// What `user`, `pass`, `agent_user`, `agent_pass`, `phone_login`, `phone_pass` and
/// `agent_user_group` keep (VICIdial's `preg_replace("/[^-_0-9a-zA-Z]/", ...)`).
pub const LOGIN_CHARS: &str = "letters A-Z and a-z, digits, `-` and `_`";

/// Whether the dialer keeps `value` as it is in a login-like parameter.
pub fn is_login_safe(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The rule a secret login-like value (a password) breaks, without a word about its characters;
/// `None` when it is kept whole.
pub fn secret_login_chars_problem(value: &str) -> Option<String> {
    (!is_login_safe(value))
        .then(|| format!("may hold only {LOGIN_CHARS}: the dialer silently drops every other character"))
}

/// The rule a login-like value breaks, naming the characters that would go, for a field
/// violation; `None` when it is kept whole. Not for secrets: see [`secret_login_chars_problem`].
pub fn login_chars_problem(value: &str) -> Option<String> {
    let dropped: String = {
        let mut seen = Vec::new();
        for c in value.chars().filter(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        seen.iter().map(|c| format!("`{}`", c.escape_default())).collect::<Vec<_>>().join(" ")
    };
    (!dropped.is_empty()).then(|| {
        format!("may hold only {LOGIN_CHARS}: the dialer silently drops every other character (here {dropped})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_class_the_family_strips_is_named() {
        for (value, named) in [
            ("p@ss!", "`@` `!`"),
            ("two words", "` `"),
            ("dot.ted", "`.`"),
            ("pl+us", "`+`"),
            ("sl/ash", "`/`"),
            ("quo'te", "`\\'`"),
            ("ümlaut", "`\\u{fc}`"),
            ("tab\tbed", "`\\t`"),
        ] {
            let problem = login_chars_problem(value).unwrap_or_else(|| panic!("{value:?} passes"));
            assert!(problem.contains(named), "{value:?}: {problem}");
        }
        for kept in ["api", "Agent_01", "a-b_C-9", ""] {
            assert!(is_login_safe(kept), "{kept:?}");
            assert_eq!(login_chars_problem(kept), None);
            assert_eq!(secret_login_chars_problem(kept), None);
        }
        let secret = secret_login_chars_problem("hunter2!").unwrap();
        assert!(!secret.contains('!'), "a secret's characters are never named: {secret}");
    }
}
