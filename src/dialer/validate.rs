//! The dialer document's field rules, checked before any vendor call. Every bad field of a
//! request is reported at once, as a BadRequest field violation naming its proto path.
//!
//! Lengths count characters, as the dialer does. Control characters are refused everywhere:
//! the dialer answers in single text lines, which a newline in a value would break.

use super::{
    provider::{Agent, DialList, FieldRules, Lead},
    vicidial_family::fields::{TextSet, login_chars_problem, secret_login_chars_problem, text_chars_problem},
};
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

/// A login-like field (user, password, phone login, group): `min..=max` characters, and only
/// those the dialer keeps (it silently drops the others, so `p@ss!` would become `pss`).
fn login_text(v: &mut Violations, field: &str, value: &str, range: (usize, usize)) {
    login_rule(v, field, value, range, login_chars_problem);
}

/// [`login_text`] for a password: its characters are never named.
fn login_secret(v: &mut Violations, field: &str, value: &str, range: (usize, usize)) {
    login_rule(v, field, value, range, secret_login_chars_problem);
}

fn login_rule(
    v: &mut Violations,
    field: &str,
    value: &str,
    range: (usize, usize),
    problem: fn(&str) -> Option<String>,
) {
    let before = v.len();
    text(v, field, value, range);
    if v.len() == before
        && let Some(problem) = problem(value)
    {
        v.add(field, problem);
    }
}

/// A text field of `range` characters which, where the vendor strips text (`rules`), holds only
/// what it keeps.
fn kept_text(v: &mut Violations, field: &str, value: &str, range: (usize, usize), set: TextSet, rules: &FieldRules) {
    let before = v.len();
    text(v, field, value, range);
    if v.len() == before
        && rules.strips_text
        && let Some(problem) = text_chars_problem(value, set)
    {
        v.add(field, problem);
    }
}

/// The rules of the optional agent fields, shared by create and update.
fn agent_fields(v: &mut Violations, a: &Agent, rules: &FieldRules) {
    use secrecy::ExposeSecret;
    if let Some(p) = &a.password {
        login_secret(v, "agent.password", p.expose_secret(), rules.password);
    }
    if let Some(level) = a.level
        && !(1..=9).contains(&level)
    {
        v.add("agent.level", format!("must be 1-9 (is {level})"));
    }
    if let Some(name) = &a.full_name {
        kept_text(v, "agent.full_name", name, (1, 50), TextSet::FullName, rules);
    }
    if let Some(group) = &a.group {
        login_text(v, "agent.group", group, (1, 20));
    }
    if let Some(login) = &a.phone_login {
        login_text(v, "agent.phone_login", login, (1, 20));
    }
    if let Some(p) = &a.phone_password {
        login_secret(v, "agent.phone_password", p.expose_secret(), (1, 20));
    }
    if let Some(vm) = &a.voicemail_id {
        digits(v, "agent.voicemail_id", vm, rules.voicemail_id);
    }
    if let Some(email) = &a.email {
        let n = chars(email);
        let (min, max) = rules.email;
        if !(min..=max).contains(&n) {
            v.add("agent.email", format!("must be {min}-{max} characters (has {n})"));
        } else if !well_formed_email(email) {
            v.add("agent.email", "must be a well-formed address like name@example.com");
        } else if rules.strips_text
            && let Some(problem) = text_chars_problem(email, TextSet::Email)
        {
            v.add("agent.email", problem);
        }
    }
}

/// CreateAgent: user, password, level, full name and group are required.
pub fn new_agent(a: &Agent, rules: &FieldRules) -> Result<(), ApiError> {
    let mut v = Violations::new();
    login_text(&mut v, "agent.user", &a.user, (2, 20));
    for (field, missing) in [
        ("agent.password", a.password.is_none()),
        ("agent.level", a.level.is_none()),
        ("agent.full_name", a.full_name.is_none()),
        ("agent.group", a.group.is_none()),
    ] {
        v.check(!missing, field, "is required to create an agent");
    }
    v.check(a.active.is_none(), "agent.active", "is for UpdateAgent only: a new agent is active");
    agent_fields(&mut v, a, rules);
    v.into_result()
}

/// UpdateAgent: user is required, and at least one field to change.
pub fn agent_update(a: &Agent, rules: &FieldRules) -> Result<(), ApiError> {
    let mut v = Violations::new();
    login_text(&mut v, "agent.user", &a.user, (2, 20));
    let changes = a.password.is_some()
        || a.level.is_some()
        || a.full_name.is_some()
        || a.group.is_some()
        || a.phone_login.is_some()
        || a.phone_password.is_some()
        || a.voicemail_id.is_some()
        || a.email.is_some()
        || a.active.is_some()
        || !a.clear.is_empty();
    v.check(changes, "agent", "names nothing to change: set at least one field besides `user`");
    agent_fields(&mut v, a, rules);
    v.into_result()
}

/// DeleteAgent: the agent's login.
pub fn agent_user(user: &str) -> Result<(), ApiError> {
    let mut v = Violations::new();
    login_text(&mut v, "user", user, (2, 20));
    v.into_result()
}

/// The rules of a list, its fields under `prefix` (`list`, `target.new_list`).
pub fn list_into(v: &mut Violations, prefix: &str, l: &DialList, rules: &FieldRules) {
    digits(v, &format!("{prefix}.list_id"), &l.list_id, (2, 14));
    kept_text(v, &format!("{prefix}.name"), &l.name, rules.list_name, TextSet::ListName, rules);
    // Campaign ids are login-like in the whole family (`-`, `_`, letters, digits).
    login_text(v, &format!("{prefix}.campaign_id"), &l.campaign_id, rules.campaign_id);
}

/// CreateList.
pub fn list(l: &DialList, rules: &FieldRules) -> Result<(), ApiError> {
    let mut v = Violations::new();
    list_into(&mut v, "list", l, rules);
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

/// The lengths the family's lead columns hold (`vicidial_list`); a longer value would be cut
/// without a word, so it is refused instead.
pub const LEAD_FIELD_LIMITS: [(&str, usize); 6] =
    [("first_name", 30), ("last_name", 30), ("email", 70), ("city", 50), ("postal_code", 10), ("vendor_lead_code", 20)];

/// The character set of each lead field in [`LEAD_FIELD_LIMITS`], where the vendor strips text.
const LEAD_FIELD_SETS: [TextSet; 6] =
    [TextSet::PersonName, TextSet::PersonName, TextSet::Email, TextSet::Address, TextSet::Postal, TextSet::Code];

/// A lead ready for the dialer (phone normalised), or its phone's digits and why it is refused.
/// `takes_phone_code`: whether the vendor takes a lead's country code at all.
pub fn lead(mut lead: Lead, takes_phone_code: bool, rules: &FieldRules) -> Result<Lead, (String, String)> {
    let digits = match normalize_phone(&lead.phone_number) {
        Ok(d) => d,
        Err(e) => {
            lead.phone_number.retain(|c| c.is_ascii_digit());
            return Err((lead.phone_number, e));
        }
    };
    let values =
        [&lead.first_name, &lead.last_name, &lead.email, &lead.city, &lead.postal_code, &lead.vendor_lead_code];
    for (((field, max), value), set) in LEAD_FIELD_LIMITS.iter().zip(values).zip(LEAD_FIELD_SETS) {
        let n = chars(value);
        if n > *max {
            return Err((
                digits,
                format!("{field} must be at most {max} characters (has {n}): the dialer would cut it"),
            ));
        }
        if has_control(value) {
            return Err((digits, format!("{field} must not contain control characters")));
        }
        if rules.strips_text
            && let Some(problem) = text_chars_problem(value, set)
        {
            return Err((digits, format!("{field} {problem}")));
        }
    }
    let code = lead.phone_code.as_str();
    let well_formed = code.len() <= 4 && code.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err((digits, "phone_code must be 1-4 digits (a country code, e.g. 1 or 44)".to_owned()));
    }
    if !takes_phone_code && !matches!(code, "" | "1") {
        return Err((
            digits,
            format!(
                "phone_code {code} cannot be sent: this dialer's lead export takes no country code and dials with 1"
            ),
        ));
    }
    lead.phone_number = digits;
    Ok(lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &FieldRules = &crate::dialer::elision::wire::RULES;

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
        assert_eq!(fields(new_agent(&a, E)), ["agent.active"]);
    }

    #[test]
    fn a_complete_agent_passes() {
        let mut a = valid_agent();
        a.phone_login = Some("1000".into());
        a.phone_password = Some("x".to_owned().into());
        a.voicemail_id = Some("8000".into());
        a.email = Some("agent@example.com".into());
        assert!(new_agent(&a, E).is_ok());
    }

    #[test]
    fn every_missing_required_agent_field_is_named_at_once() {
        let a = Agent { user: "1000".into(), ..Agent::default() };
        assert_eq!(fields(new_agent(&a, E)), ["agent.password", "agent.level", "agent.full_name", "agent.group"]);
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
            assert_eq!(fields(new_agent(&a, E)), [field]);
        }
    }

    #[test]
    fn login_like_fields_refuse_every_character_the_dialer_would_strip() {
        type Sets = fn(&mut Agent, &str);
        let fields: [(&str, Sets); 5] = [
            ("agent.user", |a, v| a.user = v.into()),
            ("agent.password", |a, v| a.password = Some(v.to_owned().into())),
            ("agent.phone_login", |a, v| a.phone_login = Some(v.into())),
            ("agent.phone_password", |a, v| a.phone_password = Some(v.to_owned().into())),
            ("agent.group", |a, v| a.group = Some(v.into())),
        ];
        // One value per class of stripped character: punctuation, blank, non-ASCII letter, symbol.
        for (field, set) in fields {
            for value in ["p@ss!", "two words", "crème", "a+b", "x.y", "q'uote"] {
                let mut a = valid_agent();
                set(&mut a, value);
                let err = new_agent(&a, E).unwrap_err();
                assert_eq!(err.fields(), [field], "{field} = {value:?}");
                assert!(format!("{err:?}").contains("silently drops"), "{field} = {value:?}: {err:?}");
            }
            let mut a = valid_agent();
            set(&mut a, "Ok_value-9");
            assert!(new_agent(&a, E).is_ok(), "{field}: letters, digits, - and _ pass");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut a = valid_agent();
        a.full_name = Some("é".repeat(50));
        assert!(new_agent(&a, E).is_ok());
    }

    #[test]
    fn an_update_needs_a_user_and_something_to_change() {
        assert_eq!(fields(agent_update(&Agent { user: "1000".into(), ..Agent::default() }, E)), ["agent"]);
        assert!(agent_update(&Agent { user: "1000".into(), active: Some(false), ..Agent::default() }, E).is_ok());
        assert_eq!(
            fields(agent_update(&Agent { user: "x".into(), level: Some(12), ..Agent::default() }, E)),
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
        assert!(list(&good, E).is_ok());
        let bad =
            DialList { list_id: "1".into(), name: "short".into(), campaign_id: "CAMPAIGN1".into(), active: false };
        assert_eq!(fields(list(&bad, E)), ["list.list_id", "list.name", "list.campaign_id"]);
        let mut v = Violations::new();
        list_into(&mut v, "target.new_list", &DialList { list_id: "12x".into(), ..good }, E);
        assert_eq!(fields(v.into_result()), ["target.new_list.list_id"]);
        assert_eq!(fields(list_id("target.existing_list_id", "123456789012345")), ["target.existing_list_id"]);
    }

    #[test]
    fn phones_are_digits_6_to_16_once_non_digits_are_stripped() {
        assert_eq!(normalize_phone("+1 (555) 010-0199").unwrap(), "15550100199");
        assert_eq!(normalize_phone("123456").unwrap(), "123456");
        assert!(normalize_phone("12345").unwrap_err().contains("has 5"));
        assert!(normalize_phone(&"9".repeat(17)).is_err());
        let (digits, why) = lead(Lead { phone_number: "12-34".into(), ..Lead::default() }, true, E).unwrap_err();
        assert_eq!(digits, "1234");
        assert!(why.contains("6-16 digits"));
    }

    #[test]
    fn lead_fields_at_their_column_width_pass_and_one_more_is_refused() {
        type Sets = fn(&mut Lead, String);
        let fields: [(&str, usize, Sets); 6] = [
            ("first_name", 30, |l, v| l.first_name = v),
            ("last_name", 30, |l, v| l.last_name = v),
            ("email", 70, |l, v| l.email = v),
            ("city", 50, |l, v| l.city = v),
            ("postal_code", 10, |l, v| l.postal_code = v),
            ("vendor_lead_code", 20, |l, v| l.vendor_lead_code = v),
        ];
        for (field, max, set) in fields {
            let mut at = Lead { phone_number: "5550100".into(), ..Lead::default() };
            set(&mut at, "é".repeat(max));
            assert!(lead(at.clone(), true, E).is_ok(), "{field} of {max}");
            set(&mut at, "é".repeat(max + 1));
            let (_, why) = lead(at, true, E).unwrap_err();
            assert!(why.starts_with(&format!("{field} must be at most {max} characters")), "{why}");
        }
    }

    #[test]
    fn a_phone_code_is_1_to_4_digits_and_only_1_where_the_vendor_takes_none() {
        let with = |code: &str| Lead { phone_number: "5550100".into(), phone_code: code.into(), ..Lead::default() };
        for ok in ["", "1", "44", "1234"] {
            assert!(lead(with(ok), true, E).is_ok(), "{ok}");
        }
        for bad in ["12345", "+44", "4a"] {
            assert!(lead(with(bad), true, E).unwrap_err().1.contains("1-4 digits"), "{bad}");
        }
        assert!(lead(with("1"), false, E).is_ok());
        assert!(lead(with("44"), false, E).unwrap_err().1.contains("takes no country code"));
    }
}
