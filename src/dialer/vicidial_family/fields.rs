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

/// The character sets stock VICIdial keeps in its text parameters (non-Latin mode off, the
/// default: letters are A-Z and a-z). Values with other characters would be stored changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSet {
    /// agent_full_name: `- + . : / @ _`, space, letters, digits.
    FullName,
    /// list_name: as a full name, plus `?` and `&`.
    ListName,
    /// first_name, last_name: `- ' _ .`, space, letters, digits (`+` becomes a space).
    PersonName,
    /// city: `- ' . : / @ _`, space, letters, digits (`+` becomes a space).
    Address,
    /// email: `- ' . : / @ % _`, space, letters, digits (`+` becomes a space).
    Email,
    /// postal_code: `- '`, space, letters, digits (`+` becomes a space).
    Postal,
    /// vendor_lead_code: anything but `;`, `#` and `"` (`+` becomes a space).
    Code,
}

impl TextSet {
    /// The punctuation kept besides letters, digits and space (`None`: every character but
    /// the listed removals is kept).
    fn punctuation(self) -> Option<&'static str> {
        match self {
            Self::FullName => Some("-+.:/@_"),
            Self::ListName => Some("-+.:/@_?&"),
            Self::PersonName => Some("-'_."),
            Self::Address => Some("-'.:/@_"),
            Self::Email => Some("-'.:/@%_"),
            Self::Postal => Some("-'"),
            Self::Code => None,
        }
    }

    /// Whether the dialer keeps `c` as it is.
    pub fn keeps(self, c: char) -> bool {
        match self.punctuation() {
            Some(p) => c.is_ascii_alphanumeric() || c == ' ' || p.contains(c),
            None => !matches!(c, ';' | '#' | '"' | '+'),
        }
    }

    /// What the set holds, for a message.
    pub fn describe(self) -> String {
        match self.punctuation() {
            Some(p) => {
                let p: Vec<String> = p.chars().map(|c| format!("`{c}`")).collect();
                format!("letters A-Z and a-z, digits, spaces and {}", p.join(" "))
            }
            None => "any character but `;` `#` `\"` and `+`".to_owned(),
        }
    }
}

/// The rule a text value breaks under `set`, naming the characters the dialer would drop or
/// change; `None` when it is kept whole.
pub fn text_chars_problem(value: &str, set: TextSet) -> Option<String> {
    let mut seen = Vec::new();
    for c in value.chars().filter(|c| !set.keeps(*c)) {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    let named: Vec<String> = seen.iter().map(|c| format!("`{}`", c.escape_default())).collect();
    (!named.is_empty()).then(|| {
        format!(
            "may hold only {}: stock VICIdial silently drops or changes every other character (here {})",
            set.describe(),
            named.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sets_follow_the_sources_stripping_table() {
        let cases = [
            (TextSet::FullName, "O'Brien, Jr.", Some("`\\'` `,`")),
            (TextSet::FullName, "Ann-Marie B. / a+b@x_y", None),
            (TextSet::ListName, "Leads? Q&A", None),
            (TextSet::PersonName, "O'Brien", None),
            (TextSet::PersonName, "Smith+Jones", Some("`+`")),
            (TextSet::PersonName, "José", Some("`\\u{e9}`")),
            (TextSet::Address, "St. Paul: 1/2", None),
            (TextSet::Email, "a+b@x.com", Some("`+`")),
            (TextSet::Email, "first.last%x@ex-ample.com", None),
            (TextSet::Postal, "SW1A 1AA", None),
            (TextSet::Postal, "12345.6", Some("`.`")),
            (TextSet::Code, "CRM-1/2 x", None),
            (TextSet::Code, "a;b#c\"d", Some("`;` `#` `\\\"`")),
        ];
        for (set, value, named) in cases {
            let problem = text_chars_problem(value, set);
            match named {
                None => assert_eq!(problem, None, "{set:?} {value:?}"),
                Some(named) => {
                    let p = problem.unwrap_or_else(|| panic!("{set:?} {value:?} passes"));
                    assert!(p.contains(named), "{set:?} {value:?}: {p}");
                }
            }
        }
    }

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
