//! Alianza's JSON as the account area's domain types: an account's state and type, its calling
//! plans by name, its SIP lines with their owners' names and numbers.

use std::collections::HashMap;

use super::wire;
use crate::account::provider::{Account, AccountState, AccountType, CallingPlan, SipLine};
use chrono::{DateTime, Utc};

fn state_of(status: &str) -> AccountState {
    match status {
        "ACTIVE" => AccountState::Active,
        "DISABLED" => AccountState::Disabled,
        "SUSPENDED" => AccountState::Suspended,
        "PENDING" => AccountState::Pending,
        "DELETE_PENDING" => AccountState::DeletePending,
        "DELETED" => AccountState::Deleted,
        _ => AccountState::Unknown,
    }
}

pub(super) fn domain_account(a: wire::Account, names: &HashMap<String, String>) -> Account {
    Account {
        number: a.account_number,
        name: a.account_name,
        state: state_of(&a.status),
        account_type: match a.account_type.as_str() {
            "SIMPLE" => Some(AccountType::Simple),
            "ADVANCED" => Some(AccountType::Advanced),
            _ => None,
        },
        platform_type: a.platform_type,
        billing_cycle_day: i32::try_from(a.billing_cycle_day).unwrap_or(0),
        calling_plans: a.calling_plans.into_iter().map(|p| calling_plan(p, names, String::new())).collect(),
    }
}

fn calling_plan(p: wire::AccountCallingPlan, names: &HashMap<String, String>, user: String) -> CallingPlan {
    CallingPlan {
        name: names.get(&p.calling_plan_product_id).cloned().unwrap_or(p.calling_plan_product_id),
        start_date: start_date(&p.start_date),
        plan_minutes: p.plan_minutes,
        seconds_remaining: p.seconds_remaining,
        user,
    }
}

/// A calling plan's `startDate`: the spec's date-time (`2026-01-01T00:00:00Z`), or a bare date,
/// read as its midnight UTC. Anything else is no date: the panel shows none rather than failing.
fn start_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

/// The users' own calling plans (`referenceType` END_USER), each naming its user.
pub(super) fn user_plans(users: &mut [wire::User], names: &HashMap<String, String>) -> Vec<CallingPlan> {
    let mut plans = Vec::new();
    for u in users {
        let user = full_name(&u.first_name, &u.last_name);
        let user = if user.is_empty() { u.id.clone() } else { user };
        plans.extend(std::mem::take(&mut u.calling_plans).into_iter().map(|p| calling_plan(p, names, user.clone())));
    }
    plans
}

/// Device lines as SIP lines (only those [`wire::DeviceLine::is_sip_line`] counts): the display name is the owner's name (else the device name), the
/// dial number the owner's caller-id number (else the line's emergency number).
pub(super) fn sip_lines(users: &[wire::User], lines: Vec<wire::DeviceLine>) -> Vec<SipLine> {
    // An account has a handful of users; a map pays off only for many (a status panel is built
    // on every GetAccountStatus, so this is the hot path).
    let by_id: Option<HashMap<&str, &wire::User>> =
        (users.len() > 16).then(|| users.iter().map(|u| (u.id.as_str(), u)).collect());
    let owner_of = |id: &str| match &by_id {
        Some(map) => map.get(id).copied(),
        None => users.iter().find(|u| u.id == id),
    };
    lines
        .into_iter()
        .filter(wire::DeviceLine::is_sip_line)
        .map(|l| {
            let owner = if l.user_id.is_empty() { None } else { owner_of(&l.user_id) };
            let owner_name = owner.map(|u| full_name(&u.first_name, &u.last_name)).unwrap_or_default();
            let caller_id = owner
                .and_then(|u| u.caller_id_config.as_ref())
                .map(|c| c.caller_id_number.trim())
                .filter(|n| !n.is_empty());
            SipLine {
                line_number: l.line_number,
                display_name: if owner_name.is_empty() { l.device_name } else { owner_name },
                dial_number: caller_id.map_or_else(|| l.emergency_number.clone(), str::to_owned),
                sip_username: l.sip_username,
                sip_password: l.sip_password,
                emergency_number: l.emergency_number,
                mac_address: l.mac_address,
            }
        })
        .collect()
}

/// `First Last`, either part possibly empty, with one allocation.
fn full_name(first: &str, last: &str) -> String {
    let (first, last) = (first.trim(), last.trim());
    let mut name = String::with_capacity(first.len() + last.len() + 1);
    name.push_str(first);
    if !first.is_empty() && !last.is_empty() {
        name.push(' ');
    }
    name.push_str(last);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, first: &str, last: &str, caller_id: &str) -> wire::User {
        wire::User {
            id: id.into(),
            first_name: first.into(),
            last_name: last.into(),
            user_product_plan: "STANDARD".into(),
            caller_id_config: Some(wire::CallerIdConfig { caller_id_number: caller_id.into() }),
            calling_plans: Vec::new(),
        }
    }

    fn line(user_id: &str, device: &str, emergency: &str) -> wire::DeviceLine {
        wire::DeviceLine {
            device_name: device.into(),
            user_id: user_id.into(),
            line_number: "1".into(),
            sip_username: format!("sip-{device}"),
            sip_password: "pw".into(),
            mac_address: "0004F2000001".into(),
            emergency_number: emergency.into(),
            line_type: "Line".into(),
        }
    }

    #[test]
    fn display_name_and_dial_number_come_from_the_owner_with_fallbacks() {
        let users = [user("u1", "Jane", "Smith", "8015550100"), user("u2", "", "", "")];
        let lines = sip_lines(
            &users,
            vec![line("u1", "Desk", "911"), line("u2", "Kitchen", "8015550199"), line("", "Fax", "8015550198")],
        );
        assert_eq!((lines[0].display_name.as_str(), lines[0].dial_number.as_str()), ("Jane Smith", "8015550100"));
        assert_eq!((lines[1].display_name.as_str(), lines[1].dial_number.as_str()), ("Kitchen", "8015550199"));
        assert_eq!((lines[2].display_name.as_str(), lines[2].dial_number.as_str()), ("Fax", "8015550198"));
    }

    #[test]
    fn owners_are_found_among_many_users_too() {
        let mut users: Vec<wire::User> = (0..40).map(|i| user(&format!("u{i}"), "", &format!("L{i}"), "")).collect();
        users.push(user("boss", " Ann ", " Lee ", " 8015550177 "));
        let lines = sip_lines(&users, vec![line("boss", "Desk", "911"), line("u7", "Hall", "8015550100")]);
        assert_eq!((lines[0].display_name.as_str(), lines[0].dial_number.as_str()), ("Ann Lee", "8015550177"));
        assert_eq!((lines[1].display_name.as_str(), lines[1].dial_number.as_str()), ("L7", "8015550100"));
    }

    #[test]
    fn only_device_lines_that_are_registrations_count_as_sip_lines() {
        let cases = [
            ("Line", true, true),
            ("", true, true),
            ("AdvancedSharedLine", true, true),
            ("AdvancedSharedLine", false, false),
            ("SipPaging", true, true),
            ("SipPaging", false, false),
            ("ReferencedUser", true, false),
            ("PresenceBlfUser", true, false),
            ("SpeedDialUser", true, false),
            ("SpeedDialTn", true, false),
            ("CallParkingSpot", true, false),
            ("IntercomLine", true, false),
            ("Custom", true, false),
            ("SomethingNew", true, false),
        ];
        for (line_type, own_username, counts) in cases {
            let mut l = line("", "Desk", "911");
            l.line_type = line_type.into();
            if !own_username {
                l.sip_username.clear();
            }
            assert_eq!(
                sip_lines(&[], vec![l]).len(),
                usize::from(counts),
                "lineType {line_type:?}, username {own_username}"
            );
        }
    }

    #[test]
    fn users_plans_name_their_user_and_the_account_plans_none() {
        let mut users = [user("u1", "Jane", "Smith", ""), user("u2", "", "", "")];
        users[0].calling_plans = vec![wire::AccountCallingPlan {
            calling_plan_product_id: "p1".into(),
            start_date: "2026-01-01T00:00:00Z".into(),
            ..Default::default()
        }];
        users[1].calling_plans =
            vec![wire::AccountCallingPlan { calling_plan_product_id: "p9".into(), ..Default::default() }];
        let names = HashMap::from([("p1".to_owned(), "Unlimited".to_owned())]);
        let plans = user_plans(&mut users, &names);
        assert_eq!(
            plans.iter().map(|p| (p.name.as_str(), p.user.as_str(), p.start_date)).collect::<Vec<_>>(),
            [("Unlimited", "Jane Smith", Some(day(2026, 1, 1))), ("p9", "u2", None)]
        );
    }

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()
    }

    #[test]
    fn start_dates_are_date_times_or_bare_dates_and_anything_else_is_none() {
        assert_eq!(start_date("2026-01-01T00:00:00Z"), Some(day(2026, 1, 1)));
        assert_eq!(start_date("2026-01-01T02:00:00+02:00"), Some(day(2026, 1, 1)), "offsets are normalised to UTC");
        assert_eq!(start_date("2026-03-15"), Some(day(2026, 3, 15)));
        for bad in ["", "soon", "2026-13-01", "01/02/2026"] {
            assert_eq!(start_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn calling_plans_are_named_from_the_products_or_keep_their_id() {
        let account = wire::Account {
            status: "SUSPENDED".into(),
            account_type: "ADVANCED".into(),
            calling_plans: vec![
                wire::AccountCallingPlan { calling_plan_product_id: "p1".into(), ..Default::default() },
                wire::AccountCallingPlan { calling_plan_product_id: "p2".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        let names = HashMap::from([("p1".to_owned(), "Unlimited".to_owned())]);
        let a = domain_account(account, &names);
        assert_eq!(a.state, AccountState::Suspended);
        assert_eq!(a.account_type, Some(AccountType::Advanced));
        assert_eq!(a.calling_plans[0].name, "Unlimited");
        assert_eq!(a.calling_plans[1].name, "p2");
        assert!(a.calling_plans.iter().all(|p| p.user.is_empty()));
    }
}
