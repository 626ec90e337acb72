//! Secrets out of vendor answers. The family echoes passwords: `SUCCESS: add_user USER HAS BEEN
//! ADDED - api|1000|9999|...`, `ERROR: Login incorrect, please try again: |api|1234|BAD|`,
//! Elision's add_list `"password":"1234"`.

/// Removes secrets from a vendor answer before it goes anywhere (ErrorInfo, answers, logs).
/// VICIdial echoes passwords: `SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|...`,
/// `ERROR: Login incorrect, please try again: |api|1234|BAD|`, add_list's `"password":"1234"`.
/// An echo may be encoded: JSON-escaped (`\"`, `\\`, PHP's `\/` and `\u00e9`), form- or
/// percent-encoded, or HTML-escaped; every one of those forms is removed too.
#[derive(Debug, Default)]
pub struct Scrubber {
    /// Every form of every secret, longest first; `true` for the forms of a short secret.
    forms: Vec<(String, bool)>,
}

/// Secrets this short are replaced only where they stand alone (not inside a longer run of
/// letters and digits), so that a one-digit password does not blank every digit of a message.
const SUBSTRING_MIN: usize = 4;

impl Scrubber {
    pub fn new<'s>(secrets: impl IntoIterator<Item = &'s str>) -> Self {
        let mut forms: Vec<(String, bool)> = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let short = secret.chars().count() < SUBSTRING_MIN;
            for form in encodings(secret) {
                if !forms.iter().any(|(f, _)| *f == form) {
                    forms.push((form, short));
                }
            }
        }
        // Longest first, so that a secret containing another is removed whole.
        forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        Self { forms }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (form, short) in &self.forms {
            if !out.contains(form.as_str()) {
                continue;
            }
            out = if *short { replace_standalone(&out, form) } else { out.replace(form.as_str(), "***") };
        }
        out
    }
}

/// The ways an answer may spell `secret`: as is, JSON-escaped (serde's and PHP's styles, with
/// `\/` and `\uXXXX` in either case), form- and percent-encoded, and HTML-escaped.
fn encodings(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    for slash in [false, true] {
        for unicode in [None, Some(false), Some(true)] {
            out.push(json_escaped(secret, slash, unicode));
        }
    }
    out.push(percent_encoded(secret, true));
    out.push(percent_encoded(secret, false));
    out.push(html_escaped(secret));
    out.sort();
    out.dedup();
    out
}

/// `s` as inside a JSON string: `slash` escapes `/` (PHP's default); `unicode` escapes every
/// non-ASCII character as `\uXXXX` (`Some(true)`: upper-case hex), as PHP does by default.
fn json_escaped(s: &str, slash: bool, unicode: Option<bool>) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 8);
    let hex = |out: &mut String, unit: u16, upper: bool| {
        let _ = if upper { write!(out, "\\u{unit:04X}") } else { write!(out, "\\u{unit:04x}") };
    };
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() && (c as u32) < 0x20 => hex(&mut out, c as u16, unicode == Some(true)),
            c if !c.is_ascii() && unicode.is_some() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    hex(&mut out, *unit, unicode == Some(true));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` as `application/x-www-form-urlencoded` (`plus`: space as `+`) or percent-encoded (`%20`).
fn percent_encoded(s: &str, plus: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b' ' if plus => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `s` as PHP's `htmlspecialchars` writes it.
fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#039;")
}

/// Replaces the occurrences of `form` that are not part of a longer run of letters and digits.
fn replace_standalone(text: &str, form: &str) -> String {
    let glued = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(form) {
        if at < last {
            continue;
        }
        let before = text[..at].chars().next_back();
        let after = text[at + form.len()..].chars().next();
        if !glued(before) && !glued(after) {
            out.push_str(&text[last..at]);
            out.push_str("***");
            last = at + form.len();
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_answers() {
        let s = Scrubber::new(["9999", "1234", "7"]);
        assert_eq!(
            s.scrub("SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|7|Testing Person|AGENTS"),
            "SUCCESS: add_user USER HAS BEEN ADDED - api|1000|***|***|Testing Person|AGENTS"
        );
        assert_eq!(
            s.scrub("ERROR: Login incorrect, please try again: |api|1234|BAD|"),
            "ERROR: Login incorrect, please try again: |api|***|BAD|"
        );
        assert_eq!(s.scrub(r#"{"user":"api","password":"7"}"#), r#"{"user":"api","password":"***"}"#);
        // A short secret inside a longer token is left alone: it is not the secret.
        assert_eq!(s.scrub("list 1701"), "list 1701");
    }

    #[test]
    fn escaped_echoes_of_a_secret_are_scrubbed_too() {
        let secret = "pa/ss\"w\\ö rd&<";
        let s = Scrubber::new([secret]);
        let echoes = [
            // serde_json's and PHP's json_encode (\/ and \u00f6 by default, either hex case).
            serde_json::to_string(&json!({ "p": secret })).unwrap(),
            r#"{"p":"pa\/ss\"w\\\u00f6 rd&<"}"#.to_owned(),
            r#"{"p":"pa\/ss\"w\\\u00F6 rd&<"}"#.to_owned(),
            r#"{"p":"pa/ss\"w\\\u00f6 rd&<"}"#.to_owned(),
            // Form- and percent-encoded, and HTML-escaped.
            "pass=pa%2Fss%22w%5C%C3%B6+rd%26%3C".to_owned(),
            "pass=pa%2Fss%22w%5C%C3%B6%20rd%26%3C".to_owned(),
            "<b>pa/ss&quot;w\\ö rd&amp;&lt;</b>".to_owned(),
        ];
        for echo in echoes {
            let scrubbed = s.scrub(&echo);
            assert!(scrubbed.contains("***"), "{echo} -> {scrubbed}");
            assert!(!scrubbed.contains("rd") && !scrubbed.contains('w'), "{echo} -> {scrubbed}");
        }
        // Short secrets are matched standalone in their escaped forms too.
        let s = Scrubber::new(["é"]);
        assert_eq!(s.scrub(r#"{"pass":"\u00e9","word":"caf\u00e9s"}"#), r#"{"pass":"***","word":"caf\u00e9s"}"#);
    }
}
