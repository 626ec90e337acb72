//! The dialer document's field rules, checked before any vendor call. Every bad field of a
//! request is reported at once, as a BadRequest field violation naming its proto path.
//!
//! Lengths count characters, as the dialer does. Control characters are refused everywhere:
//! the dialer answers in single text lines, which a newline in a value would break.

use super::provider::{Agent, DialList, Lead};
use crate::ops::{ApiError, Violations};

/// Phone numbers: digits once everything else is removed.
pub const PHONE_DIGITS: (usize, usize) = (6, 16);

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A text field of `min..=max` characters.
fn text(v: &mut Violations, field: &str, value: &str, (min, max): (usize, usize)) {
    let n = chars(value);
    if n < min || n > max {
        v.add(field, format!("must be {min}-{max} characters (has {n})"));
    } else if has_control(value) {
        v.add(field, "must not contain control characters (newlines, tabs, ...)");
    }
}

/// A field of `min..=max` ASCII digits.
fn digits(v: &mut Violations, field: &str, value: &str, (min, max): (usize, usize)) {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        v.add(field, format!("must be {min}-{max} digits and nothing else"));
    } else if value.len() < min || value.len() > max {
        v.add(field, format!("must be {min}-{max} digits (has {})", value.len()));
    }
}

/// `local@domain.tld`, 1-100 characters, no spaces: what the dialer's email field accepts.
pub fn well_formed_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && !local.contains('@')
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The rules of the optional agent fields, shared by create and update.
fn agent_fields(v: &mut Violations, a: &Agent) {
    use secrecy::ExposeSecret;
    if let Some(p) = &a.password {
        text(v, "agent.password", p.expose_secret(), (1, 20));
    }
    if let Some(level) = a.level
        && !(1..=9).contains(&level)
    {
        v.add("agent.level", format!("must be 1-9 (is {level})"));
    }
    if let Some(name) = &a.full_name {
        text(v, "agent.full_name", name, (1, 50));
    }
    if let Some(group) = &a.group {
        text(v, "agent.group", group, (1, 20));
    }
    if let Some(login) = &a.phone_login {
        text(v, "agent.phone_login", login, (1, 20));
    }
    if let Some(p) = &a.phone_password {
        text(v, "agent.phone_password", p.expose_secret(), (1, 20));
    }
    if let Some(vm) = &a.voicemail_id {
        digits(v, "agent.voicemail_id", vm, (1, 10));
    }
    if let Some(email) = &a.email {
        let n = chars(email);
        if !(1..=100).contains(&n) {
            v.add("agent.email", format!("must be 1-100 characters (has {n})"));
        } else if !well_formed_email(email) {
            v.add("agent.email", "must be a well-formed address like name@example.com");
        }
    }
}

/// CreateAgent: user, password, level, full name and group are required.
pub fn new_agent(a: &Agent) -> Result<(), ApiError> {
    let mut v = Violations::new();
    text(&mut v, "agent.user", &a.user, (2, 20));
    for (field, missing) in [
        ("agent.password", a.password.is_none()),
        ("agent.level", a.level.is_none()),
        ("agent.full_name", a.full_name.is_none()),
        ("agent.group", a.group.is_none()),
    ] {
        v.check(!missing, field, "is required to create an agent");
    }
    v.check(a.active.is_none(), "agent.active", "is for UpdateAgent only: a new agent is active");
    agent_fields(&mut v, a);
    v.into_result()
}

/// UpdateAgent: user is required, and at least one field to change.
pub fn agent_update(a: &Agent) -> Result<(), ApiError> {
    let mut v = Violations::new();
    text(&mut v, "agent.user", &a.user, (2, 20));
    let changes = a.password.is_some()
        || a.level.is_some()
        || a.full_name.is_some()
        || a.group.is_some()
        || a.phone_login.is_some()
        || a.phone_password.is_some()
        || a.voicemail_id.is_some()
        || a.email.is_some()
        || a.active.is_some();
    v.check(changes, "agent", "names nothing to change: set at least one field besides `user`");
    agent_fields(&mut v, a);
    v.into_result()
}

/// The rules of a list, its fields under `prefix` (`list`, `target.new_list`).
pub fn list_into(v: &mut Violations, prefix: &str, l: &DialList) {
    digits(v, &format!("{prefix}.list_id"), &l.list_id, (2, 14));
    text(v, &format!("{prefix}.name"), &l.name, (6, 30));
    text(v, &format!("{prefix}.campaign_id"), &l.campaign_id, (2, 8));
}

/// CreateList.
pub fn list(l: &DialList) -> Result<(), ApiError> {
    let mut v = Violations::new();
    list_into(&mut v, "list", l);
    v.into_result()
}

/// An existing list's id, as an export target.
pub fn list_id(field: &str, id: &str) -> Result<(), ApiError> {
    let mut v = Violations::new();
    digits(&mut v, field, id, (2, 14));
    v.into_result()
}

/// The phone number's digits, or why the lead is refused.
pub fn normalize_phone(phone: &str) -> Result<String, String> {
    let d: String = phone.chars().filter(char::is_ascii_digit).collect();
    let (min, max) = PHONE_DIGITS;
    if d.len() < min || d.len() > max {
        return Err(format!(
            "phone_number must have {min}-{max} digits once spaces, dashes and other non-digits are removed (has {})",
            d.len()
        ));
    }
    Ok(d)
}

/// A lead ready for the dialer (phone normalised), or its phone's digits and why it is refused.
pub fn lead(mut lead: Lead) -> Result<Lead, (String, String)> {
    match normalize_phone(&lead.phone_number) {
        Ok(d) => {
            lead.phone_number = d;
            Ok(lead)
        }
        Err(e) => {
            lead.phone_number.retain(|c| c.is_ascii_digit());
            Err((lead.phone_number, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_agent() -> Agent {
        Agent {
            user: "1000".into(),
            password: Some("9999".to_owned().into()),
            level: Some(1),
            full_name: Some("Testing Person".into()),
            group: Some("AGENTS".into()),
            ..Agent::default()
        }
    }

    fn fields(r: Result<(), ApiError>) -> Vec<String> {
        r.err().map(|e| e.fields().into_iter().map(str::to_owned).collect()).unwrap_or_default()
    }

    #[test]
    fn active_is_for_updates_only() {
        let mut a = valid_agent();
        a.active = Some(true);
        assert_eq!(fields(new_agent(&a)), ["agent.active"]);
    }

    #[test]
    fn a_complete_agent_passes() {
        let mut a = valid_agent();
        a.phone_login = Some("1000".into());
        a.phone_password = Some("x".to_owned().into());
        a.voicemail_id = Some("8000".into());
        a.email = Some("agent@example.com".into());
        assert!(new_agent(&a).is_ok());
    }

    #[test]
    fn every_missing_required_agent_field_is_named_at_once() {
        let a = Agent { user: "1000".into(), ..Agent::default() };
        assert_eq!(fields(new_agent(&a)), ["agent.password", "agent.level", "agent.full_name", "agent.group"]);
    }

    #[test]
    fn agent_lengths_follow_the_dialer_document() {
        type Breaks = fn(&mut Agent);
        let cases: Vec<(&str, Breaks)> = vec![
            ("agent.user", |a| a.user = "1".into()),
            ("agent.user", |a| a.user = "u".repeat(21)),
            ("agent.password", |a| a.password = Some(String::new().into())),
            ("agent.password", |a| a.password = Some("p".repeat(21).into())),
            ("agent.level", |a| a.level = Some(0)),
            ("agent.level", |a| a.level = Some(10)),
            ("agent.full_name", |a| a.full_name = Some(String::new())),
            ("agent.full_name", |a| a.full_name = Some("n".repeat(51))),
            ("agent.group", |a| a.group = Some("g".repeat(21))),
            ("agent.phone_login", |a| a.phone_login = Some("l".repeat(21))),
            ("agent.phone_password", |a| a.phone_password = Some("p".repeat(21).into())),
            ("agent.voicemail_id", |a| a.voicemail_id = Some("12345678901".into())),
            ("agent.voicemail_id", |a| a.voicemail_id = Some("12a".into())),
            ("agent.email", |a| a.email = Some("not-an-address".into())),
            ("agent.email", |a| a.email = Some(format!("{}@example.com", "e".repeat(90)))),
            ("agent.full_name", |a| a.full_name = Some("line\nbreak".into())),
        ];
        for (field, breaks) in cases {
            let mut a = valid_agent();
            breaks(&mut a);
            assert_eq!(fields(new_agent(&a)), [field]);
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut a = valid_agent();
        a.full_name = Some("é".repeat(50));
        assert!(new_agent(&a).is_ok());
    }

    #[test]
    fn an_update_needs_a_user_and_something_to_change() {
        assert_eq!(fields(agent_update(&Agent { user: "1000".into(), ..Agent::default() })), ["agent"]);
        assert!(agent_update(&Agent { user: "1000".into(), active: Some(false), ..Agent::default() }).is_ok());
        assert_eq!(
            fields(agent_update(&Agent { user: "x".into(), level: Some(12), ..Agent::default() })),
            ["agent.user", "agent.level"]
        );
    }

    #[test]
    fn emails_must_be_well_formed() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org"] {
            assert!(well_formed_email(ok), "{ok}");
        }
        for bad in ["a@b", "@b.co", "a b@c.co", "a@.co", "a@b..co", "ab.co"] {
            assert!(!well_formed_email(bad), "{bad}");
        }
    }

    #[test]
    fn list_rules_name_each_field_under_its_prefix() {
        let good = DialList {
            list_id: "1101".into(),
            name: "Test API list".into(),
            campaign_id: "TESTCAMP".into(),
            active: true,
        };
        assert!(list(&good).is_ok());
        let bad =
            DialList { list_id: "1".into(), name: "short".into(), campaign_id: "CAMPAIGN1".into(), active: false };
        assert_eq!(fields(list(&bad)), ["list.list_id", "list.name", "list.campaign_id"]);
        let mut v = Violations::new();
        list_into(&mut v, "target.new_list", &DialList { list_id: "12x".into(), ..good });
        assert_eq!(fields(v.into_result()), ["target.new_list.list_id"]);
        assert_eq!(fields(list_id("target.existing_list_id", "123456789012345")), ["target.existing_list_id"]);
    }

    #[test]
    fn phones_are_digits_6_to_16_once_non_digits_are_stripped() {
        assert_eq!(normalize_phone("+1 (555) 010-0199").unwrap(), "15550100199");
        assert_eq!(normalize_phone("123456").unwrap(), "123456");
        assert!(normalize_phone("12345").unwrap_err().contains("has 5"));
        assert!(normalize_phone(&"9".repeat(17)).is_err());
        let (digits, why) = lead(Lead { phone_number: "12-34".into(), ..Lead::default() }).unwrap_err();
        assert_eq!(digits, "1234");
        assert!(why.contains("6-16 digits"));
    }
}
