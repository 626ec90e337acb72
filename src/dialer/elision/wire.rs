//! Elision's wire format: function and parameter names, the limits of one call, and the parsing
//! of both answer styles (VICIdial's one-line `SUCCESS:` / `ERROR:` / `NOTICE:` answers, and
//! Elision's JSON envelopes). Shared by the client and the simulator, so they cannot drift.
//!
//! Answers are classified by their prefix (or `success` flag); the wording only refines which
//! error it is, since it differs between dialer versions. Nothing here panics on any input.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dialer::provider::{LeadOutcome, Refusal};

/// ErrorInfo domain of what the dialer decided.
pub const DOMAIN: &str = "elision.com";

pub const ADD_USER: &str = "add_user";
pub const UPDATE_USER: &str = "update_user";
pub const ADD_LIST: &str = "add_list";
pub const ACTIVE_LISTS: &str = "active_lists";
pub const ADD_MULTI_LEAD: &str = "add_multi_lead";

/// Leads in one add_multi_lead call, at most. The dialer document sets no limit; VICIdial boxes
/// insert a batch in one PHP request, so patchbay keeps batches small and the simulator refuses
/// bigger ones (so that a client bug shows).
pub const MAX_LEADS_PER_CALL: usize = 100;
/// Bytes of one form-encoded request body, at most (well below PHP's default `post_max_size`
/// of 8 MB; the simulator answers 413 above it, as a web server in front of PHP does).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Room in a body for the parameters other than `multi_leads` (function, source, user, pass).
pub const PARAMS_ALLOWANCE: usize = 1024;

/// The prefix of a text answer line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Success,
    Error,
    Notice,
}

/// One line of a text answer: `ERROR: add_user USER ALREADY EXISTS - api|1000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub prefix: Prefix,
    /// The whole line as received.
    pub raw: String,
}

impl Line {
    /// What the line says, without its prefix, function name and data:
    /// `USER ALREADY EXISTS`, `Login incorrect, please try again`.
    pub fn what(&self) -> String {
        let rest = match self.raw.split_once(':') {
            Some(("SUCCESS" | "ERROR" | "NOTICE", rest)) => rest.trim_start(),
            _ => self.raw.as_str(),
        };
        let rest = rest.split(" - ").next().unwrap_or(rest);
        let rest = rest.split(": |").next().unwrap_or(rest).trim();
        // `add_user USER ALREADY EXISTS`: the function name is a lowercase word.
        match rest.split_once(' ') {
            Some((func, tail)) if func.chars().all(|c| c.is_ascii_lowercase() || c == '_') && func.contains('_') => {
                tail.trim().to_owned()
            }
            _ => rest.to_owned(),
        }
    }
}

/// A parsed answer, in either style.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Text lines; at least one, the first recognised.
    Text(Vec<Line>),
    Json(Value),
}

impl Answer {
    /// The line that decides a text answer: the first `ERROR`, else the first `SUCCESS`, else
    /// the first `NOTICE` (a notice alone is not an error).
    pub fn decisive(lines: &[Line]) -> Option<&Line> {
        lines
            .iter()
            .find(|l| l.prefix == Prefix::Error)
            .or_else(|| lines.iter().find(|l| l.prefix == Prefix::Success))
            .or_else(|| lines.first())
    }
}

fn line_prefix(line: &str) -> Option<Prefix> {
    if line.starts_with("SUCCESS:") {
        Some(Prefix::Success)
    } else if line.starts_with("ERROR:") {
        Some(Prefix::Error)
    } else if line.starts_with("NOTICE:") {
        Some(Prefix::Notice)
    } else if line.contains("|LOCK|") || line.contains("|IPBLOCK|") {
        // VICIdial's lock-out answer has no prefix: `Too many login attempts, ...: |api|LOCK|`.
        Some(Prefix::Error)
    } else {
        None
    }
}

/// Parses an answer body. `Err` says why it is not an answer (a garbage body).
pub fn parse(body: &str) -> Result<Answer, String> {
    let trimmed = body.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err("an empty answer".into());
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map(Answer::Json).map_err(|e| format!("invalid JSON: {e}"));
    }
    let mut lines = Vec::new();
    for (i, line) in trimmed.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        match line_prefix(line) {
            Some(prefix) => lines.push(Line { prefix, raw: line.to_owned() }),
            // The first line decides whether this is an answer at all; stray lines after one
            // (HTML comments some dialer versions append) are ignored.
            None if i == 0 => return Err("neither JSON nor a SUCCESS/ERROR/NOTICE line".into()),
            None => {}
        }
    }
    Ok(Answer::Text(lines))
}

/// The JSON envelope of add_list and active_lists, and of each lead of add_multi_lead.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Envelope {
    pub success: bool,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: Value,
}

/// Which request an error message answers, so that a generic wording lands on the right field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Agent,
    List,
    Leads,
}

/// What an error message means. Keyed on stable fragments of VICIdial's and Elision's wording,
/// case-insensitively; anything unrecognised is [`Refusal::Other`].
pub fn classify(message: &str, subject: Subject) -> Refusal {
    let m = message.to_ascii_uppercase();
    let has = |s: &str| m.contains(s);
    if has("LOGIN INCORRECT") || has("TOO MANY LOGIN ATTEMPTS") || has("|LOCK|") || has("|BAD|") || has("|IPBLOCK|") {
        return Refusal::AuthFailed;
    }
    if has("PERMISSION") {
        return Refusal::PermissionDenied;
    }
    if has("USER GROUP DOES NOT EXIST") || has("VALID USER GROUP") {
        return Refusal::UserGroupNotFound;
    }
    if has("CAMPAIGN DOES NOT EXIST") {
        return Refusal::CampaignNotFound;
    }
    if has("ALREADY EXIST") {
        return if subject == Subject::List { Refusal::ListExists } else { Refusal::AgentExists };
    }
    if has("USER DOES NOT EXIST") {
        return Refusal::AgentNotFound;
    }
    if let Some(rest) = m.split("YOU MUST USE A VALID ").nth(1) {
        let what = rest.split(',').next().unwrap_or(rest).trim();
        let field = match what {
            "PASSWORD" => "agent.password",
            "USER LEVEL" => "agent.level",
            "FULL NAME" => "agent.full_name",
            "PHONE LOGIN" => "agent.phone_login",
            "PHONE PASSWORD" => "agent.phone_password",
            "VOICEMAIL ID" => "agent.voicemail_id",
            "EMAIL" => "agent.email",
            _ => "agent",
        };
        return Refusal::InvalidField(field);
    }
    if has("ACTIVE MUST BE") {
        return Refusal::InvalidField(if subject == Subject::List { "list.active" } else { "agent.active" });
    }
    if has("REQUIRED FIELDS") || has("PLEASE SEND") {
        return Refusal::InvalidField(match subject {
            Subject::Agent => "agent",
            Subject::List => "list",
            Subject::Leads => "leads",
        });
    }
    Refusal::Other
}

/// Removes secrets from a vendor answer before it goes anywhere (ErrorInfo, answers, logs).
/// VICIdial echoes passwords: `SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|...`,
/// `ERROR: Login incorrect, please try again: |api|1234|BAD|`, add_list's `"password":"1234"`.
#[derive(Debug, Default)]
pub struct Scrubber<'a> {
    secrets: Vec<&'a str>,
}

/// Secrets this short are replaced only where they stand alone between separators, so that a
/// one-digit password does not blank every digit of a message.
const SUBSTRING_MIN: usize = 4;

impl<'a> Scrubber<'a> {
    pub fn new(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so that a secret containing another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if secret.len() >= SUBSTRING_MIN {
                out = out.replace(secret, "***");
            } else {
                out = replace_tokens(&out, secret);
            }
        }
        out
    }
}

/// Replaces the tokens of `text` equal to `secret`; tokens are split at `|`, spaces and JSON or
/// form punctuation.
fn replace_tokens(text: &str, secret: &str) -> String {
    let is_sep = |c: char| matches!(c, '|' | ' ' | ':' | ',' | '"' | '{' | '}' | '[' | ']' | '=' | '&' | '\t');
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        out.push_str(if token == secret { "***" } else { token });
        token.clear();
    };
    for c in text.chars() {
        if is_sep(c) {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// One lead as add_multi_lead takes it. Optional fields are left out when empty.
#[derive(Debug, Serialize)]
pub struct WireLead<'a> {
    pub phone_number: &'a str,
    pub list_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub first_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub last_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub email: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub city: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub postal_code: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub vendor_lead_code: &'a str,
}

/// The length of `s` once `application/x-www-form-urlencoded` (space -> `+`, others `%XX`).
pub fn form_encoded_len(s: &str) -> usize {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_' | b' ') { 1 } else { 3 })
        .sum()
}

/// add_multi_lead's answer: a whole-call error, or one outcome per lead sent (`n` of them).
#[derive(Debug, Clone, PartialEq)]
pub enum LeadsAnswer {
    /// `["ERROR","add_multi_lead YOU MUST USE ALL REQUIRED FIELDS","api",""]`, or an envelope
    /// with `success: false`: the message.
    Refused(String),
    Outcomes(Vec<LeadOutcome>),
}

/// Reads add_multi_lead's JSON. `Err` when the JSON is not one of its shapes.
pub fn lead_outcomes(json: Value, n: usize) -> Result<LeadsAnswer, String> {
    match json {
        Value::Array(items) => {
            let text = |i: usize| items.get(i).and_then(Value::as_str).unwrap_or_default().to_owned();
            if text(0).eq_ignore_ascii_case("ERROR") {
                Ok(LeadsAnswer::Refused(text(1)))
            } else {
                Err("a JSON array that is not an ERROR answer".into())
            }
        }
        Value::Object(mut map) => {
            if map.contains_key("success") {
                let env: Envelope = serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
                return if env.success {
                    Err("a bare success envelope instead of one entry per lead".into())
                } else {
                    Ok(LeadsAnswer::Refused(env.message))
                };
            }
            let mut outcomes = Vec::with_capacity(n);
            for i in 1..=n {
                let outcome = match map.remove(&format!("lead {i}")) {
                    None => LeadOutcome::Unknown { error: "the dialer's answer has no entry for this lead".into() },
                    Some(entry) => match serde_json::from_value::<Envelope>(entry) {
                        Ok(e) if e.success => LeadOutcome::Accepted { lead_id: lead_id_of(&e.data) },
                        Ok(e) => LeadOutcome::Rejected { error: rejection(&e) },
                        Err(err) => {
                            LeadOutcome::Unknown { error: format!("unreadable entry in the dialer's answer: {err}") }
                        }
                    },
                };
                outcomes.push(outcome);
            }
            Ok(LeadsAnswer::Outcomes(outcomes))
        }
        _ => Err("JSON that is neither an object nor an array".into()),
    }
}

/// `1234567893|1101|1036||NEW|`: phone, list, lead id, ...
fn lead_id_of(data: &Value) -> String {
    match data {
        Value::String(s) => s.split('|').nth(2).unwrap_or_default().to_owned(),
        _ => String::new(),
    }
}

fn rejection(e: &Envelope) -> String {
    let message = if e.message.is_empty() { "refused by the dialer" } else { e.message.as_str() };
    match &e.data {
        Value::String(d) if !d.is_empty() => format!("{message} ({d})"),
        Value::Number(d) => format!("{message} ({d})"),
        _ => message.to_owned(),
    }
}

/// An active_lists entry, `CAMPAIGN-LISTID-LIST NAME`, as (campaign, list id, name). The campaign
/// is the text before the first `-`, the list id the digits after it, and the name everything
/// after the next `-` (names may hold dashes and spaces).
pub fn parse_active_list(entry: &str) -> Option<(String, String, String)> {
    let (campaign, rest) = entry.split_once('-')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if campaign.is_empty() || digits == 0 {
        return None;
    }
    let (list_id, rest) = rest.split_at(digits);
    let name = match rest {
        "" => "",
        r => r.strip_prefix('-')?,
    };
    Some((campaign.to_owned(), list_id.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(body: &str) -> Vec<Line> {
        match parse(body).unwrap() {
            Answer::Text(lines) => lines,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn text_answers_are_keyed_on_their_prefix() {
        let lines = text("SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|1|Testing Person|AGENTS\n");
        assert_eq!(lines[0].prefix, Prefix::Success);
        assert_eq!(lines[0].what(), "USER HAS BEEN ADDED");
        let lines = text("ERROR: add_user USER ALREADY EXISTS - api|api");
        assert_eq!(Answer::decisive(&lines).unwrap().prefix, Prefix::Error);
        assert_eq!(lines[0].what(), "USER ALREADY EXISTS");
        let lines = text("SUCCESS: update_user USER HAS BEEN UPDATED - api|1000\nNOTICE: update_user something\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(Answer::decisive(&lines).unwrap().prefix, Prefix::Success);
    }

    #[test]
    fn login_and_lockout_lines_are_errors() {
        let lines = text("ERROR: Login incorrect, please try again: |api|wrong|BAD|\n");
        assert_eq!(lines[0].what(), "Login incorrect, please try again");
        assert_eq!(classify(&lines[0].raw, Subject::Agent), Refusal::AuthFailed);
        let lines = text("Too many login attempts, try again in 15 minutes: |api|LOCK|\n");
        assert_eq!(lines[0].prefix, Prefix::Error);
        assert_eq!(classify(&lines[0].raw, Subject::Leads), Refusal::AuthFailed);
    }

    #[test]
    fn garbage_is_an_error_and_never_a_panic() {
        for body in ["", "   ", "<html>oops</html>", "\u{1}<<garbage>>{\"unterminated", "{\"success\":", "[1,2"] {
            assert!(parse(body).is_err(), "{body:?}");
        }
        assert!(lead_outcomes(json!("text"), 1).is_err());
        assert!(lead_outcomes(json!([1, 2]), 1).is_err());
        assert!(lead_outcomes(json!({"success": 3}), 1).is_err());
    }

    #[test]
    fn the_seeds_error_wordings_are_classified() {
        use Refusal::*;
        let cases = [
            ("ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS - api|0", Subject::Agent, PermissionDenied),
            ("ERROR: add_user YOU MUST USE ALL REQUIRED FIELDS - api|1000|", Subject::Agent, InvalidField("agent")),
            (
                "ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS IN THIS USER LEVEL - api|8",
                Subject::Agent,
                PermissionDenied,
            ),
            ("ERROR: add_user USER GROUP DOES NOT EXIST - api|ADFHR", Subject::Agent, UserGroupNotFound),
            ("ERROR: add_user USER ALREADY EXISTS - api|api", Subject::Agent, AgentExists),
            ("ERROR: update_user USER DOES NOT EXIST - api|78789", Subject::Agent, AgentNotFound),
            (
                "ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE THIS USER - api|7878",
                Subject::Agent,
                PermissionDenied,
            ),
            (
                "ERROR: update_user YOU MUST USE A VALID FULL NAME, THIS IS AN OPTIONAL FIELD - api|",
                Subject::Agent,
                InvalidField("agent.full_name"),
            ),
            (
                "ERROR: update_user YOU MUST USE A VALID USER LEVEL, THIS IS AN OPTIONAL FIELD - api|0|9|1",
                Subject::Agent,
                InvalidField("agent.level"),
            ),
            (
                "ERROR: update_user YOU MUST USE A VALID USER GROUP, THIS IS AN OPTIONAL FIELD - api|FAKEGROUP|0",
                Subject::Agent,
                UserGroupNotFound,
            ),
            (
                "ERROR: update_user YOU MUST USE A VALID PHONE LOGIN, THIS IS AN OPTIONAL FIELD - api|fakephone|0|0",
                Subject::Agent,
                InvalidField("agent.phone_login"),
            ),
            (
                "ERROR: update_user YOU MUST USE A VALID VOICEMAIL ID, THIS IS AN OPTIONAL FIELD - api",
                Subject::Agent,
                InvalidField("agent.voicemail_id"),
            ),
            (
                "ERROR: update_user YOU MUST USE A VALID EMAIL, THIS IS AN OPTIONAL FIELD - api",
                Subject::Agent,
                InvalidField("agent.email"),
            ),
            (
                "ERROR: update_user ACTIVE MUST BE Y OR N, THIS IS AN OPTIONAL FIELD - api",
                Subject::Agent,
                InvalidField("agent.active"),
            ),
            ("api User does not have permission to add list in the system", Subject::List, PermissionDenied),
            ("Please send list id , campaign id and list name", Subject::List, InvalidField("list")),
            ("TESTCAMP campaign does not exist", Subject::List, CampaignNotFound),
            ("1101 list already exist", Subject::List, ListExists),
            ("add_multi_lead YOU MUST USE ALL REQUIRED FIELDS", Subject::Leads, InvalidField("leads")),
            ("something new in version 3", Subject::Agent, Other),
        ];
        for (message, subject, want) in cases {
            assert_eq!(classify(message, subject), want, "{message}");
        }
    }

    #[test]
    fn multi_lead_answers_give_one_outcome_per_lead() {
        let answer = json!({
            "lead 1": {"success": true, "message": "Record(s) Created", "data": "1234567893|1101|1036||NEW|"},
            "lead 2": {"success": false, "message": "Invalid phone number", "data": "1293"},
        });
        let LeadsAnswer::Outcomes(outcomes) = lead_outcomes(answer, 3).unwrap() else { panic!() };
        assert_eq!(outcomes[0], LeadOutcome::Accepted { lead_id: "1036".into() });
        assert_eq!(outcomes[1], LeadOutcome::Rejected { error: "Invalid phone number (1293)".into() });
        assert!(matches!(outcomes[2], LeadOutcome::Unknown { .. }));
        let refused = lead_outcomes(json!(["ERROR", "add_multi_lead YOU MUST USE ALL REQUIRED FIELDS", "api", ""]), 1);
        assert_eq!(refused.unwrap(), LeadsAnswer::Refused("add_multi_lead YOU MUST USE ALL REQUIRED FIELDS".into()));
    }

    #[test]
    fn active_list_entries_split_at_the_first_dash_and_the_digits() {
        let p = |s| parse_active_list(s).unwrap();
        assert_eq!(p("NIKHIL-1101-Test API list"), ("NIKHIL".into(), "1101".into(), "Test API list".into()));
        assert_eq!(
            p("TESTING-20042018-20042018-hardik"),
            ("TESTING".into(), "20042018".into(), "20042018-hardik".into())
        );
        assert_eq!(p("test_plk-260518-260518 test"), ("test_plk".into(), "260518".into(), "260518 test".into()));
        assert_eq!(
            p("NIKHIL-26042018-26042018_custom-form"),
            ("NIKHIL".into(), "26042018".into(), "26042018_custom-form".into())
        );
        assert_eq!(p("C-12"), ("C".into(), "12".into(), String::new()));
        for bad in ["nodash", "-12-x", "CAMP-abc-x", "CAMP-12x"] {
            assert_eq!(parse_active_list(bad), None, "{bad}");
        }
    }

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
    fn form_encoding_lengths_match_the_encoder() {
        // The same encoder reqwest's `.form()` uses (form_urlencoded, through `url`).
        let encoded = |s: &str| {
            let mut url = reqwest::Url::parse("http://x/").unwrap();
            url.query_pairs_mut().append_pair("k", s);
            url.query().unwrap().len() - "k=".len()
        };
        for s in ["abc XYZ-_.*", r#"[{"phone_number":"5550100","list_id":"1101"}]"#, "é ü|&=+%", ""] {
            assert_eq!(form_encoded_len(s), encoded(s), "{s}");
        }
    }
}
