//! The parameters of the family's user functions (add_user, update_user): the same names in
//! stock VICIdial and Elision.

use secrecy::ExposeSecret;

use crate::dialer::provider::{Agent, Clearable};

/// What the family's update_user takes as "make this field empty".
pub const BLANK: &str = "--BLANK--";

/// Which agent field (by proto name) update_user can empty, or why not: `--BLANK--` survives the
/// family's character stripping only where `-` and letters are kept, which rules out
/// `voicemail_id` (stored as the text `BLANK`); the other fields are ones an agent must have.
pub fn clearable(field: &str) -> Result<Clearable, &'static str> {
    match field {
        "phone_login" => Ok(Clearable::PhoneLogin),
        "phone_password" => Ok(Clearable::PhonePassword),
        "email" => Ok(Clearable::Email),
        "voicemail_id" => Err("the dialer cannot empty it (it stores `--BLANK--` there as the text `BLANK`)"),
        "active" => Err("give true (reactivate) or false (deactivate)"),
        _ => Err("an agent must have one, so it cannot be cleared"),
    }
}

/// The add_user / update_user parameters of an agent; only what is set, and `--BLANK--` for
/// each field to empty.
pub fn agent_params(agent: &Agent) -> Vec<(&'static str, String)> {
    let mut p: Vec<(&'static str, String)> = vec![("agent_user", agent.user.clone())];
    let mut opt = |key: &'static str, value: Option<String>| {
        if let Some(v) = value {
            p.push((key, v));
        }
    };
    opt("agent_pass", agent.password.as_ref().map(|s| s.expose_secret().to_owned()));
    opt("agent_user_level", agent.level.map(|l| l.to_string()));
    opt("agent_full_name", agent.full_name.clone());
    opt("agent_user_group", agent.group.clone());
    opt("phone_login", agent.phone_login.clone());
    opt("phone_pass", agent.phone_password.as_ref().map(|s| s.expose_secret().to_owned()));
    opt("voicemail_id", agent.voicemail_id.clone());
    opt("email", agent.email.clone());
    opt("active", agent.active.map(|a| if a { "Y" } else { "N" }.to_owned()));
    for field in &agent.clear {
        let key = match field {
            Clearable::PhoneLogin => "phone_login",
            Clearable::PhonePassword => "phone_pass",
            Clearable::Email => "email",
        };
        p.push((key, BLANK.to_owned()));
    }
    p
}

pub fn agent_secrets(agent: &Agent) -> impl Iterator<Item = &str> {
    [agent.password.as_ref(), agent.phone_password.as_ref()].into_iter().flatten().map(|s| s.expose_secret())
}

pub fn as_refs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
