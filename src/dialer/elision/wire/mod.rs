//! Elision's wire format: function and parameter names, the limits of one call, and the parsing
//! of both answer styles (VICIdial's one-line `SUCCESS:` / `ERROR:` / `NOTICE:` answers, and
//! Elision's JSON envelopes). Shared by the client and the simulator, so they cannot drift.
//!
//! Answers are classified by their prefix (or `success` flag); the wording only refines which
//! error it is, since it differs between dialer versions. Only an answer's message part is ever
//! read for that, never its data (which echoes the caller's values: a user named "permission..."
//! must not turn into a permission problem). Nothing here panics on any input.

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
        let (message, _) = split_line(&self.raw);
        let rest = match message.split_once(':') {
            Some(("SUCCESS" | "ERROR" | "NOTICE", rest)) => rest.trim(),
            _ => message.trim(),
        };
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
    } else if login_status(line).is_some() {
        // VICIdial's lock-out answer has no prefix: `Too many login attempts, ...: |api|LOCK|`.
        Some(Prefix::Error)
    } else {
        None
    }
}

/// A text line's message part and its data. `ERROR: add_user USER ALREADY EXISTS - api|1000` is
/// message `ERROR: add_user USER ALREADY EXISTS` and data `api|1000`; the login answers put
/// their data after `: |` instead (`ERROR: Login incorrect, please try again: |api|1234|BAD|`).
/// Whichever separator comes first ends the message: what follows echoes values (the API user,
/// the agent, its group, a password), which may contain either separator themselves.
fn split_line(raw: &str) -> (&str, Option<LineData<'_>>) {
    let dash = raw.find(" - ");
    let login = raw.find(": |");
    match (dash, login) {
        (Some(d), Some(l)) if l < d => (&raw[..l], Some(LineData { text: &raw[l + 2..], login: true })),
        (Some(d), _) => (&raw[..d], Some(LineData { text: &raw[d + 3..], login: false })),
        (None, Some(l)) => (&raw[..l], Some(LineData { text: &raw[l + 2..], login: true })),
        (None, None) => (raw, None),
    }
}

/// The `|`-separated data of a text line.
struct LineData<'a> {
    text: &'a str,
    /// In a login answer's place (after `: |`), which ends with VICIdial's authorisation result.
    login: bool,
}

/// The result word that ends a login answer's data (`|api|1234|BAD|`, `|api|LOCK|`): the one
/// piece of data read, because it is VICIdial's own (`user_authorization`), not an echo, and
/// keeps the lockout recognised whatever the message's wording.
fn login_status(raw: &str) -> Option<&'static str> {
    let (_, data) = split_line(raw);
    let data = data.filter(|d| d.login)?;
    let last = data.text.split('|').map(str::trim).rfind(|f| !f.is_empty())?;
    ["BAD", "LOCK", "IPBLOCK"].into_iter().find(|s| *s == last)
}

/// Parses an answer body. `Err` says why it is not an answer (a garbage body).
pub fn parse(body: &str) -> Result<Answer, String> {
    let trimmed = body.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err("an empty answer".into());
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut json: Value = serde_json::from_str(trimmed).map_err(|e| json_why(&e))?;
        drop_passwords(&mut json);
        return Ok(Answer::Json(json));
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

/// What an error line of a text answer means: its login result if it is a login answer, else
/// what its message part says ([`classify`]). Its data is never read otherwise.
pub fn classify_line(raw: &str, subject: Subject) -> Refusal {
    match login_status(raw) {
        Some("LOCK" | "IPBLOCK") => Refusal::ApiUserLocked,
        Some(_) => Refusal::AuthFailed,
        None => classify(split_line(raw).0, subject),
    }
}

/// What an error message means: a text line's message part, or a JSON answer's `message`
/// (whose only echoed values are a campaign id of at most 8 characters or a list id of digits,
/// too short to hold any of the fragments below). Keyed on stable fragments of VICIdial's and
/// Elision's wording, case-insensitively; anything unrecognised is [`Refusal::Other`].
pub fn classify(message: &str, subject: Subject) -> Refusal {
    let m = message.to_ascii_uppercase();
    let has = |s: &str| m.contains(s);
    if has("TOO MANY LOGIN ATTEMPTS") {
        return Refusal::ApiUserLocked;
    }
    if has("LOGIN INCORRECT") {
        return Refusal::AuthFailed;
    }
    // `... PERMISSION TO ADD USERS IN THIS USER LEVEL`: the agent's requested level is not below
    // the API user's; `... PERMISSION TO UPDATE THIS USER`: the agent to change is not below it.
    // Both are about the request's agent, not the tenant's rights.
    if has("IN THIS USER LEVEL") {
        return Refusal::LevelNotBelowApiUser;
    }
    if has("UPDATE THIS USER") {
        return Refusal::AgentOutranksApiUser;
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

/// Whether a JSON key names a password (VICIdial's `pass`, `agent_pass`, `phone_pass`, Elision's
/// `password`, ...).
fn is_password_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("pass") || k.contains("pwd") || k.contains("secret")
}

/// Drops every password field from a parsed JSON answer, at any depth, so that no later use of
/// the answer (a message, a log line) can quote one.
pub fn drop_passwords(json: &mut Value) {
    match json {
        Value::Object(map) => {
            map.retain(|k, _| !is_password_key(k));
            map.values_mut().for_each(drop_passwords);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_passwords),
        _ => {}
    }
}

/// Why JSON could not be read, without quoting any of it (serde's messages quote values, which
/// may be secrets).
pub fn json_why(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("invalid JSON at line {} column {}", e.line(), e.column()),
        Category::Data => "JSON of an unexpected shape".to_owned(),
        Category::Io => "unreadable JSON".to_owned(),
    }
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
                let env: Envelope = serde_json::from_value(Value::Object(map))
                    .map_err(|e| format!("not the JSON envelope ({})", json_why(&e)))?;
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
                        Err(err) => LeadOutcome::Unknown {
                            error: format!("unreadable entry in the dialer's answer ({})", json_why(&err)),
                        },
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
mod tests;
