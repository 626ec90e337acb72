//! The user functions: add_user, update_user and user_details, with the checks of the PHP
//! source in its order (the first failure answers and nothing changes).

use std::ops::RangeInclusive;

use super::{
    exchange::Params,
    model::{Permissions, SimUser},
    state::{BLANK, Caller, SimState, admin_error, ci, delimiter, number},
    strip::cut,
};

/// The update_user fields that were sent and passed their checks.
#[derive(Debug, Default)]
struct UserChanges {
    pass: Option<String>,
    full_name: Option<String>,
    level: Option<u8>,
    group: Option<String>,
    phone_login: Option<String>,
    phone_pass: Option<String>,
    voicemail_id: Option<String>,
    email: Option<String>,
    active: Option<bool>,
    /// Hotkeys, custom fields or wrap-up seconds: checked and counted as an update, not kept.
    unstored: bool,
}

impl UserChanges {
    fn is_empty(&self) -> bool {
        !self.unstored
            && self.pass.is_none()
            && self.full_name.is_none()
            && self.level.is_none()
            && self.group.is_none()
            && self.phone_login.is_none()
            && self.phone_pass.is_none()
            && self.voicemail_id.is_none()
            && self.email.is_none()
            && self.active.is_none()
    }

    fn apply(self, u: &mut SimUser) {
        let set = |field: &mut String, value: Option<String>, width: usize| {
            if let Some(v) = value {
                *field = cut(&v, width);
            }
        };
        set(&mut u.pass, self.pass, 100);
        set(&mut u.full_name, self.full_name, 50);
        set(&mut u.group, self.group, 20);
        set(&mut u.phone_login, self.phone_login, 20);
        set(&mut u.phone_pass, self.phone_pass, 100);
        set(&mut u.voicemail_id, self.voicemail_id, 10);
        set(&mut u.email, self.email, 100);
        if let Some(level) = self.level {
            u.level = level;
        }
        if let Some(active) = self.active {
            u.active = active;
        }
    }
}

/// An optional text field: `Ok(None)` when not sent, `--BLANK--` empties it, otherwise its
/// length must be in `len`; `Err` carries the value for the error line.
fn optional_text(value: String, len: RangeInclusive<usize>) -> Result<Option<String>, String> {
    match value.as_str() {
        "" => Ok(None),
        BLANK => Ok(Some(String::new())),
        v if len.contains(&v.len()) => Ok(Some(value)),
        _ => Err(value),
    }
}

/// The level rule of add_user: a level-8 API user creates levels up to 7, a level-9 one up to
/// 9 (`modify_same_user_level=1`, the default).
fn may_create_level(api_level: u8, asked: u64) -> bool {
    let api = u64::from(api_level);
    if api < 9 { asked < api } else { asked <= 9 }
}

impl SimState {
    pub fn add_user(&mut self, c: &Caller, p: &Params) -> String {
        let err = |reason: &str, data: &str| admin_error("add_user", reason, &c.name, data);
        let (agent_user, pass, level, name, group) = (
            p.get("agent_user"),
            p.get("agent_pass"),
            p.get("agent_user_level"),
            p.get("agent_full_name"),
            p.get("agent_user_group"),
        );
        if agent_user.len() < 2 || pass.len() < 2 || level.is_empty() || name.is_empty() || group.is_empty() {
            return err("YOU MUST USE ALL REQUIRED FIELDS", &format!("{agent_user}|{pass}|{level}|{name}|{group}"));
        }
        let asked = number(&level);
        if !may_create_level(c.user.level, asked) {
            let data = format!("{level}|{}", c.user.level);
            return err("USER DOES NOT HAVE PERMISSION TO ADD USERS IN THIS USER LEVEL", &data);
        }
        if !self.group_exists(&group) {
            return err("USER GROUP DOES NOT EXIST", &group);
        }
        // Compared as stored (cut to the column), so a long id never overwrites another user.
        if self.users.contains_key(&ci(&cut(&agent_user, 20))) {
            return err("USER ALREADY EXISTS", &agent_user);
        }
        let agent_user = if agent_user.contains("AUTOGENERA") {
            match self.autogenerate_user() {
                Some(id) => id,
                None => return err("USER ALREADY EXISTS", &agent_user),
            }
        } else {
            agent_user
        };
        let agent = SimUser {
            user: cut(&agent_user, 20),
            pass: cut(&pass, 100),
            level: u8::try_from(asked).unwrap_or(9),
            full_name: cut(&name, 50),
            group: cut(&group, 20),
            phone_login: cut(&p.get("phone_login"), 20),
            phone_pass: cut(&p.get("phone_pass"), 100),
            voicemail_id: cut(&p.get("voicemail_id"), 10),
            email: cut(&p.get("email"), 100),
            active: true,
            permissions: Permissions::default(),
        };
        // A new row's last_login_date is the column default, long ago.
        self.insert_user(agent, None);
        // Password hashing is off, so the password is echoed.
        format!("SUCCESS: add_user USER HAS BEEN ADDED - {}|{agent_user}|{pass}|{level}|{name}|{group}\n", c.name)
    }

    /// `system_settings.auto_user_add_value`, stepping by 7 past taken ids (`None` only if
    /// the numbers ran out).
    fn autogenerate_user(&mut self) -> Option<String> {
        let mut candidate = self.auto_user_add_value;
        for _ in 0..=self.users.len() {
            if !self.users.contains_key(&candidate.to_string()) {
                self.auto_user_add_value = candidate;
                return Some(candidate.to_string());
            }
            candidate = candidate.saturating_add(7);
        }
        None
    }

    pub fn update_user(&mut self, c: &Caller, p: &Params) -> String {
        let err = |reason: &str, data: &str| admin_error("update_user", reason, &c.name, data);
        let agent_user = p.get("agent_user");
        if !(2..=20).contains(&agent_user.len()) {
            return err("YOU MUST USE ALL REQUIRED FIELDS", &format!("{agent_user}|"));
        }
        let Some(target_level) = self.users.get(&ci(&agent_user)).map(|r| r.user.level) else {
            // The source echoes the server_ip parameter here, not the user id.
            return err("USER DOES NOT EXIST", &p.get("server_ip"));
        };
        if target_level > c.user.level {
            // The data ends in its own "\n", so an empty line follows.
            let data = format!("{agent_user}|<=|{}\n", c.user.level);
            return err("USER DOES NOT HAVE PERMISSION TO UPDATE THIS USER", &data);
        }
        if p.get("delete_user") == "Y" {
            return self.delete_user(c, &agent_user);
        }
        let changes = match self.user_changes(c, p) {
            Ok(changes) => changes,
            Err(line) => return line,
        };
        if changes.is_empty() {
            return err("NO UPDATES DEFINED", "");
        }
        if let Some(rec) = self.user_mut(&agent_user) {
            changes.apply(&mut rec.user);
            rec.failed_logins = 0;
        }
        format!("SUCCESS: update_user USER HAS BEEN UPDATED - {}|{agent_user}|\n", c.name)
    }

    fn delete_user(&mut self, c: &Caller, agent_user: &str) -> String {
        if !c.user.permissions.delete_users {
            return admin_error("update_user", "USER DOES NOT HAVE PERMISSION TO DELETE USERS", &c.name, "0");
        }
        self.users.remove(&ci(agent_user));
        format!("SUCCESS: update_user USER HAS BEEN DELETED - {}|{agent_user}|\n", c.name)
    }

    /// The optional fields of update_user in the source's order.
    fn user_changes(&self, c: &Caller, p: &Params) -> Result<UserChanges, String> {
        let err = |what: &str, data: &str| {
            let reason = format!("{what}, THIS IS AN OPTIONAL FIELD");
            admin_error("update_user", &reason, &c.name, data)
        };
        let valid = |what: &str| format!("YOU MUST USE A VALID {what}");
        let mut ch = UserChanges::default();
        let pass = p.get("agent_pass");
        ch.pass = (!pass.is_empty()).then_some(pass);
        ch.full_name = optional_text(p.get("agent_full_name"), 1..=50).map_err(|v| err(&valid("FULL NAME"), &v))?;
        let level = p.get("agent_user_level");
        if !level.is_empty() {
            let n = number(&level);
            if !(1..=9).contains(&n) || n > u64::from(c.user.level) {
                return Err(err(&valid("USER LEVEL"), &format!("{level}|{}|1", c.user.level)));
            }
            ch.level = u8::try_from(n).ok();
        }
        let group = p.get("agent_user_group");
        if !group.is_empty() {
            let exists = self.group_exists(&group);
            if group.len() > 20 || !exists {
                return Err(err(&valid("USER GROUP"), &format!("{group}|{}", u8::from(exists))));
            }
            ch.group = Some(group);
        }
        // The simulator has no phones table: only `--BLANK--` passes.
        match p.get("phone_login").as_str() {
            "" => {}
            BLANK => ch.phone_login = Some(String::new()),
            login => return Err(err(&valid("PHONE LOGIN"), &format!("{login}|0|0"))),
        }
        ch.phone_pass = optional_text(p.get("phone_pass"), 1..=20).map_err(|v| err(&valid("PHONE PASSWORD"), &v))?;
        let hotkeys = p.get("hotkeys_active");
        if !hotkeys.is_empty() {
            if number(&hotkeys) > 1 {
                return Err(err(&valid("HOTKEYS SETTING"), &hotkeys));
            }
            ch.unstored = true;
        }
        ch.voicemail_id = optional_text(p.get("voicemail_id"), 2..=10).map_err(|v| err(&valid("VOICEMAIL ID"), &v))?;
        ch.email = optional_text(p.get("email"), 5..=100).map_err(|v| err(&valid("EMAIL"), &v))?;
        for (field, name) in [
            ("custom_one", "ONE"),
            ("custom_two", "TWO"),
            ("custom_three", "THREE"),
            ("custom_four", "FOUR"),
            ("custom_five", "FIVE"),
        ] {
            let value = optional_text(p.get(field), 0..=100).map_err(|v| err(&valid(&format!("CUSTOM {name}")), &v))?;
            ch.unstored |= value.is_some();
        }
        match p.get("active").as_str() {
            "" => {}
            "Y" => ch.active = Some(true),
            "N" => ch.active = Some(false),
            other => return Err(err("ACTIVE MUST BE Y OR N", other)),
        }
        let wrapup = p.get("wrapup_seconds_override");
        if !wrapup.is_empty() {
            if !wrapup.parse::<i64>().is_ok_and(|w| (-1..=9999).contains(&w)) {
                return Err(err("wrapup_seconds_override MUST BE A VALID DIGIT BETWEEN -1 AND 9999", &wrapup));
            }
            ch.unstored = true;
        }
        Ok(ch)
    }

    pub fn user_details(&self, c: &Caller, p: &Params) -> String {
        let agent_user = p.get("agent_user");
        if agent_user.is_empty() || agent_user.len() >= 100 {
            return format!("ERROR: user_details INVALID SEARCH PARAMETERS: {}|{agent_user}\n", c.name);
        }
        let Some(rec) = self.users.get(&ci(&agent_user)) else {
            return format!("ERROR: user_details USER NOT FOUND: {}|{agent_user}\n", c.name);
        };
        let dl = delimiter(&p.get("stage"));
        let mut out = String::new();
        if p.get("header") == "YES" {
            out.push_str(&["user", "full_name", "user_group", "user_level", "active"].join(dl));
            out.push('\n');
        }
        let u = &rec.user;
        let active = if u.active { "Y" } else { "N" };
        // The row starts with the id as asked, not as stored.
        out.push_str(&[agent_user.as_str(), &u.full_name, &u.group, &u.level.to_string(), active].join(dl));
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn caller(level: u8) -> Caller {
        let mut user = crate::dialer::vicidial::sim::api_user("apiuser", "x", level, Permissions::all());
        user.level = level;
        Caller { name: "apiuser".to_owned(), user }
    }

    fn update(s: &mut SimState, pairs: &[(&str, &str)]) -> String {
        s.update_user(&caller(9), &Params::from_pairs(pairs))
    }

    #[test]
    fn the_level_rule_depends_on_the_api_users_level() {
        assert!(may_create_level(8, 7) && !may_create_level(8, 8));
        assert!(may_create_level(9, 9) && !may_create_level(9, 10));
        assert!(may_create_level(8, 0), "level 0 is not range-checked");
    }

    #[test]
    fn update_user_checks_optional_fields_in_the_source_order() {
        let mut s = SimState::seeded(Instant::now());
        s.add_group("AGENTS");
        let mut agent = crate::dialer::vicidial::sim::api_user("1001", "pw", 1, Permissions::default());
        agent.group = "AGENTS".into();
        s.insert_user(agent, None);
        let both = update(&mut s, &[("agent_user", "1001"), ("agent_user_group", "FAKEGROUP"), ("email", "x")]);
        assert_eq!(
            both,
            "ERROR: update_user YOU MUST USE A VALID USER GROUP, THIS IS AN OPTIONAL FIELD: |apiuser|FAKEGROUP|0\n"
        );
        let email = update(&mut s, &[("agent_user", "1001"), ("email", "a@b")]);
        assert_eq!(email, "ERROR: update_user YOU MUST USE A VALID EMAIL, THIS IS AN OPTIONAL FIELD: |apiuser|a@b\n");
        let level = update(&mut s, &[("agent_user", "1001"), ("agent_user_level", "12")]);
        assert_eq!(
            level,
            "ERROR: update_user YOU MUST USE A VALID USER LEVEL, THIS IS AN OPTIONAL FIELD: |apiuser|12|9|1\n"
        );
        let active = update(&mut s, &[("agent_user", "1001"), ("active", "YES")]);
        assert_eq!(active, "ERROR: update_user ACTIVE MUST BE Y OR N, THIS IS AN OPTIONAL FIELD: |apiuser|YES\n");
        assert_eq!(s.users["1001"].user.email, "", "nothing changed");
    }

    #[test]
    fn update_user_with_nothing_to_change_says_so() {
        let mut s = SimState::seeded(Instant::now());
        let line = update(&mut s, &[("agent_user", "api"), ("active", "yes")]);
        assert_eq!(line, "ERROR: update_user NO UPDATES DEFINED: |apiuser|\n");
    }

    #[test]
    fn update_user_applies_and_blanks_fields_and_resets_the_failure_count() {
        let mut s = SimState::seeded(Instant::now());
        s.users.get_mut("api").unwrap().failed_logins = 4;
        let line = update(&mut s, &[("agent_user", "api"), ("agent_full_name", "New Name"), ("email", "--BLANK--")]);
        assert_eq!(line, "SUCCESS: update_user USER HAS BEEN UPDATED - apiuser|api|\n");
        let rec = &s.users["api"];
        assert_eq!((rec.user.full_name.as_str(), rec.user.email.as_str(), rec.failed_logins), ("New Name", "", 0));
    }

    #[test]
    fn user_details_answers_a_pipe_row_or_csv_with_a_header() {
        let s = SimState::seeded(Instant::now());
        let c = caller(9);
        let row = s.user_details(&c, &Params::from_pairs(&[("agent_user", "API")]));
        assert_eq!(row, "API|API user|ADMIN|9|Y\n");
        let csv =
            s.user_details(&c, &Params::from_pairs(&[("agent_user", "api"), ("stage", "csv"), ("header", "YES")]));
        assert_eq!(csv, "user,full_name,user_group,user_level,active\napi,API user,ADMIN,9,Y\n");
        let ghost = s.user_details(&c, &Params::from_pairs(&[("agent_user", "ghost")]));
        assert_eq!(ghost, "ERROR: user_details USER NOT FOUND: apiuser|ghost\n");
        let none = s.user_details(&c, &Params::default());
        assert_eq!(none, "ERROR: user_details INVALID SEARCH PARAMETERS: apiuser|\n");
    }
}
