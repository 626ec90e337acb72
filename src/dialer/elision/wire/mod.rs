//! Elision's wire format: function and parameter names, the limits of one call, and its two
//! answer styles: the VICIdial family's text lines (read by [`crate::dialer::vicidial_family`],
//! which stock VICIdial shares) and Elision's own JSON envelopes. Shared by the client and the
//! simulator, so they cannot drift. Nothing here panics on any input.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dialer::provider::{FieldRules, LeadOutcome};
use crate::dialer::vicidial_family::answer;
pub use crate::dialer::vicidial_family::{
    answer::{Line, LoginResult, Prefix, Subject, classify, classify_line, login_result},
    scrub::Scrubber,
};

/// ErrorInfo domain of what the dialer decided.
pub const DOMAIN: &str = "elision.com";

/// Elision's document (the seed): its lengths where stock VICIdial's source differs. It names no
/// stripping of text fields (add_multi_lead takes JSON), so text values are sent as they are.
pub const RULES: FieldRules = FieldRules {
    source: "Elision's document",
    password: (1, 20),
    voicemail_id: (1, 10),
    email: (1, 100),
    list_name: (6, 30),
    campaign_id: (2, 8),
    strips_text: false,
    // The family's update_user (Elision derives from VICIdial's).
    clear: crate::dialer::vicidial_family::params::clearable,
};

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
    Ok(Answer::Text(answer::parse_lines(trimmed)?))
}

/// A parsed answer, in either style.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Text lines; at least one, the first recognised.
    Text(Vec<Line>),
    Json(Value),
}

impl Answer {
    /// The line that decides a text answer (see [`answer::decisive`]).
    pub fn decisive(lines: &[Line]) -> Option<&Line> {
        answer::decisive(lines)
    }
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
