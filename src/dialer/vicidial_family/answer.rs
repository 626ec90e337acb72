//! The family's text answers: one line per outcome, `SUCCESS:`, `ERROR:` or `NOTICE:`, then the
//! function, a reason, a separator and `|`-separated data.
//!
//! ```text
//! ERROR: add_user USER ALREADY EXISTS: |apiuser|NEWAGENT          admin error (stock source)
//! ERROR: add_user USER ALREADY EXISTS - api|api                   admin error (Elision seed, stock document)
//! SUCCESS: add_user USER HAS BEEN ADDED - apiuser|newagent|...    success, lead errors: ` - `
//! ERROR: Login incorrect, please try again: |apiuser|wrong|BAD|   login (no function name)
//! Too many login attempts, try again in 15 minutes: |boss|LOCK|   login, unprefixed in Elision
//! ```
//!
//! Reasons contain neither ` - ` nor `: |`; data may (it echoes the caller's values), so the first
//! of the two separators ends the reason. Meaning comes from the reason only, never from data: a
//! user group named `LOCK` or a user named `permission1` changes nothing. The login results (BAD,
//! 2FA, LOCK, IPBLOCK) are read only from a login line's shape: no function name before the
//! reason, and the result word last in the data. Nothing here panics on any input.

use crate::dialer::provider::Refusal;

/// The prefix of a text answer line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Success,
    Error,
    Notice,
}

/// One line of a text answer: `ERROR: add_user USER ALREADY EXISTS: |api|1000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub prefix: Prefix,
    /// The whole line as received.
    pub raw: String,
}

impl Line {
    /// The reason, without prefix, function name and data: `USER ALREADY EXISTS`,
    /// `Login incorrect, please try again`.
    pub fn what(&self) -> String {
        reason(&self.raw).to_owned()
    }

    /// The `|`-separated data fields (empty when the line has none).
    pub fn data(&self) -> Vec<&str> {
        match split_line(&self.raw).1 {
            Some(data) => data.trim_start_matches('|').split('|').collect(),
            None => Vec::new(),
        }
    }
}

/// The line that decides an answer: the first `ERROR`, else the first `SUCCESS`, else the first
/// `NOTICE` (a notice alone is not an error).
pub fn decisive(lines: &[Line]) -> Option<&Line> {
    lines
        .iter()
        .find(|l| l.prefix == Prefix::Error)
        .or_else(|| lines.iter().find(|l| l.prefix == Prefix::Success))
        .or_else(|| lines.first())
}

/// The answer lines of a text body. `Err` when its first line is not one (a garbage body); stray
/// lines after an answer line (HTML comments some dialer versions append) are left out.
pub fn parse_lines(body: &str) -> Result<Vec<Line>, String> {
    let mut lines = Vec::new();
    for (i, line) in body.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        match line_prefix(line) {
            Some(prefix) => lines.push(Line { prefix, raw: line.to_owned() }),
            None if i == 0 => return Err("neither JSON nor a SUCCESS/ERROR/NOTICE line".into()),
            None => {}
        }
    }
    if lines.is_empty() {
        return Err("an empty answer".into());
    }
    Ok(lines)
}

fn line_prefix(line: &str) -> Option<Prefix> {
    if line.starts_with("SUCCESS:") {
        Some(Prefix::Success)
    } else if line.starts_with("ERROR:") {
        Some(Prefix::Error)
    } else if line.starts_with("NOTICE:") {
        Some(Prefix::Notice)
    } else if login_result(line).is_some() {
        // Elision's lock-out answer has no prefix: `Too many login attempts, ...: |api|LOCK|`.
        Some(Prefix::Error)
    } else {
        None
    }
}

/// A line's message part and its data: the first ` - ` or `: |` ends the message. The data of a
/// `: |` line keeps its leading `|`.
pub fn split_line(raw: &str) -> (&str, Option<&str>) {
    let dash = raw.find(" - ").map(|d| (d, d + 3));
    let bar = raw.find(": |").map(|b| (b, b + 2));
    match (dash, bar) {
        (Some(d), Some(b)) => {
            let (end, data) = if b.0 < d.0 { b } else { d };
            (&raw[..end], Some(&raw[data..]))
        }
        (Some((end, data)), None) | (None, Some((end, data))) => (&raw[..end], Some(&raw[data..])),
        (None, None) => (raw, None),
    }
}

/// The message without its prefix, split into the function name (`add_user`, `auth`: a word of
/// lower-case letters and `_`) and the reason.
fn function_and_reason(message: &str) -> (Option<&str>, &str) {
    let rest = match message.split_once(':') {
        Some(("SUCCESS" | "ERROR" | "NOTICE", rest)) => rest.trim(),
        _ => message.trim(),
    };
    match rest.split_once(' ') {
        Some((func, tail)) if !func.is_empty() && func.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            (Some(func), tail.trim())
        }
        _ => (None, rest),
    }
}

/// The reason of a line: `USER ALREADY EXISTS`.
pub fn reason(raw: &str) -> &str {
    function_and_reason(split_line(raw).0).1
}

/// VICIdial's verdict on the API login (`user_authorization`), from a login line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// `BAD`: wrong user name or password, or a user that may not use the API.
    Refused,
    /// `2FA`: two-factor authentication is pending for the API user.
    TwoFactorPending,
    /// `LOCK`: too many failed logins; even the right password is refused for 15 minutes.
    Locked,
    /// `IPBLOCK`: the dialer does not accept API calls from patchbay's address.
    IpBlocked,
}

/// The login result of a line shaped like a login answer (no function name; data after `: |`
/// ending in the result word), else `None`. Whatever an admin line's data holds, it is not one.
pub fn login_result(raw: &str) -> Option<LoginResult> {
    let (message, data) = split_line(raw);
    let data = data.filter(|d| d.starts_with('|'))?;
    if function_and_reason(message).0.is_some() {
        return None;
    }
    match data.split('|').map(str::trim).rfind(|f| !f.is_empty())? {
        "BAD" => Some(LoginResult::Refused),
        "2FA" => Some(LoginResult::TwoFactorPending),
        "LOCK" => Some(LoginResult::Locked),
        "IPBLOCK" => Some(LoginResult::IpBlocked),
        _ => None,
    }
}

/// Which request an error message answers, so that a generic wording lands on the right field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Agent,
    List,
    Leads,
}

/// What an error line means: its login result if it is a login line, else what its reason says
/// ([`classify`]).
pub fn classify_line(raw: &str, subject: Subject) -> Refusal {
    match login_result(raw) {
        Some(LoginResult::Locked | LoginResult::IpBlocked) => Refusal::ApiUserLocked,
        Some(LoginResult::Refused | LoginResult::TwoFactorPending) => Refusal::AuthFailed,
        None => classify(reason(raw), subject),
    }
}

/// What a reason means (a text line's reason, or a JSON answer's `message`, whose only echoed
/// values are a campaign id of at most 8 characters or a list id of digits, too short to hold
/// any of the fragments below). Keyed on stable fragments of the family's wording,
/// case-insensitively; anything unrecognised is [`Refusal::Other`]. Login results are not read
/// here: only [`login_result`] reads them, from a login line's shape.
pub fn classify(message: &str, subject: Subject) -> Refusal {
    let m = message.to_ascii_uppercase();
    let has = |s: &str| m.contains(s);
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
    if has("INVALID SOURCE") {
        return Refusal::Misconfigured("triggers.dialer.source");
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

#[cfg(test)]
mod tests;
