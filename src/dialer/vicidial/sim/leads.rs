//! add_lead: the list, phone and DNC checks, the duplicate checks, and the insert.
//!
//! The duplicate options are tried in the source's fixed order whatever order they are sent
//! in (`DUPLIST-DUPSYS` and `DUPSYS-DUPLIST` are the same), matched case-insensitively as
//! substrings; the first hit answers. A `…DAY` suffix is accepted and has no effect: every lead
//! in a simulator was loaded within the last day.

use std::collections::HashSet;

use super::{
    exchange::Params,
    model::SimLead,
    state::{Caller, LeadRecord, SERVER_GMT, SimState, ci, list_key},
    strip::{cut, digits},
};

/// What a duplicate check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Phone,
    /// The phone against phone_number or alt_phone.
    PhoneAlt,
    TitleAlt,
    NamePhone,
}

/// Where a duplicate check looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    List,
    /// Every list of the target list's campaign.
    Campaign,
    System,
}

const DUPLICATE_CHECKS: [(&str, Key, Scope); 12] = [
    ("DUPLIST", Key::Phone, Scope::List),
    ("DUPCAMP", Key::Phone, Scope::Campaign),
    ("DUPSYS", Key::Phone, Scope::System),
    ("DUPPHONEALTLIST", Key::PhoneAlt, Scope::List),
    ("DUPPHONEALTCAMP", Key::PhoneAlt, Scope::Campaign),
    ("DUPPHONEALTSYS", Key::PhoneAlt, Scope::System),
    ("DUPTITLEALTPHONELIST", Key::TitleAlt, Scope::List),
    ("DUPTITLEALTPHONECAMP", Key::TitleAlt, Scope::Campaign),
    ("DUPTITLEALTPHONESYS", Key::TitleAlt, Scope::System),
    ("DUPNAMEPHONELIST", Key::NamePhone, Scope::List),
    ("DUPNAMEPHONECAMP", Key::NamePhone, Scope::Campaign),
    ("DUPNAMEPHONESYS", Key::NamePhone, Scope::System),
];

/// The lead being added, as stripped (not yet cut to its columns).
struct NewLead {
    phone: String,
    /// As echoed: digits, 999 when under 3 digits.
    list_id: String,
    title: String,
    first_name: String,
    last_name: String,
    alt_phone: String,
}

impl NewLead {
    fn matches(&self, key: Key, l: &LeadRecord) -> bool {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match key {
            Key::Phone => l.lead.phone_number == self.phone,
            Key::PhoneAlt => l.lead.phone_number == self.phone || same(&l.alt_phone, &self.phone),
            Key::TitleAlt => same(&l.title, &self.title) && same(&l.alt_phone, &self.alt_phone),
            Key::NamePhone => {
                l.lead.phone_number == self.phone
                    && same(&l.lead.first_name, &self.first_name)
                    && same(&l.lead.last_name, &self.last_name)
            }
        }
    }

    /// The error line for a duplicate `found`, in the data layout of its check.
    fn duplicate_line(&self, key: Key, scope: Scope, found: &LeadRecord) -> String {
        let (what, mut data) = match key {
            Key::Phone | Key::PhoneAlt => ("DUPLICATE PHONE NUMBER", vec![self.phone.clone()]),
            Key::TitleAlt => ("DUPLICATE TITLE ALT_PHONE", vec![self.title.clone(), self.alt_phone.clone()]),
            Key::NamePhone => {
                ("DUPLICATE NAME PHONE", vec![self.first_name.clone(), self.last_name.clone(), self.phone.clone()])
            }
        };
        let place = match scope {
            Scope::List => "IN LIST",
            Scope::Campaign => "IN CAMPAIGN LISTS",
            Scope::System => "IN SYSTEM",
        };
        data.push(self.list_id.clone());
        data.push(found.lead.lead_id.to_string());
        if scope != Scope::List {
            data.push(found.lead.list_id.clone());
        }
        if key == Key::PhoneAlt {
            let kind = if found.lead.phone_number == self.phone { "PHONE" } else { "ALT" };
            data.push(kind.to_owned());
        }
        format!("ERROR: add_lead {what} {place} - {}\n", data.join("|"))
    }
}

/// `Y` anywhere in the value, any case (`preg_match("/Y/i")`): `yes` counts here.
fn list_exists_check(p: &Params) -> bool {
    p.get("list_exists_check").contains(['Y', 'y'])
}

/// The DNC entry that blocks a whole area code: `727XXXXXXX`.
fn area_code_entry(phone: &str) -> String {
    format!("{}XXXXXXX", phone.get(..3).unwrap_or(phone))
}

impl SimState {
    pub fn add_lead(&mut self, c: &Caller, p: &Params) -> String {
        let phone = p.get("phone_number");
        let sent_list = digits(&p.get("list_id"));
        if list_exists_check(p) && !self.lists.contains_key(&list_key(&sent_list)) {
            return format!("ERROR: add_lead NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - {phone}|{sent_list}\n");
        }
        let list_id = if sent_list.len() < 3 { "999".to_owned() } else { sent_list };
        if !(6..=16).contains(&phone.len()) {
            return format!("ERROR: add_lead INVALID PHONE NUMBER LENGTH - {phone}|{}\n", c.name);
        }
        // The 4th digit (the exchange's first) may not be 0 or 1.
        if p.get("usacan_prefix_check") == "Y" && phone.as_bytes().get(3).is_some_and(|d| *d < b'2') {
            return format!("ERROR: add_lead INVALID PHONE NUMBER PREFIX - {phone}|{}\n", c.name);
        }
        if let Some(line) = self.dnc_error(c, p, &phone) {
            return line;
        }
        let new = NewLead {
            phone,
            list_id,
            title: p.get("title"),
            first_name: p.get("first_name"),
            last_name: p.get("last_name"),
            alt_phone: p.get("alt_phone"),
        };
        if let Some(line) = self.duplicate_error(&p.get("duplicate_check"), &new) {
            return line;
        }
        let lead_id = self.insert_lead(&new, p);
        format!(
            "SUCCESS: add_lead LEAD HAS BEEN ADDED - {}|{}|{lead_id}|{SERVER_GMT}|{}\n",
            new.phone, new.list_id, c.name
        )
    }

    /// `dnc_check` (system list) and `campaign_dnc_check` (the `campaign_id` parameter's list),
    /// each `Y` or `AREACODE`.
    fn dnc_error(&self, c: &Caller, p: &Params, phone: &str) -> Option<String> {
        let entries = |mode: &str| match mode {
            "Y" => Some(vec![phone.to_owned()]),
            "AREACODE" => Some(vec![phone.to_owned(), area_code_entry(phone)]),
            _ => None,
        };
        if let Some(entries) = entries(&p.get("dnc_check"))
            && entries.iter().any(|e| self.dnc.contains(e))
        {
            return Some(format!("ERROR: add_lead PHONE NUMBER IN DNC - {phone}|{}\n", c.name));
        }
        let campaign = p.get("campaign_id");
        if let Some(entries) = entries(&p.get("campaign_dnc_check"))
            && entries.into_iter().any(|e| self.campaign_dnc.contains(&(ci(&campaign), e)))
        {
            return Some(format!("ERROR: add_lead PHONE NUMBER IN CAMPAIGN DNC - {phone}|{campaign}|{}\n", c.name));
        }
        None
    }

    fn duplicate_error(&self, option: &str, new: &NewLead) -> Option<String> {
        let option = option.to_ascii_uppercase();
        let campaign_lists = self.campaign_lists_of(&new.list_id);
        DUPLICATE_CHECKS.iter().filter(|(name, ..)| option.contains(name)).find_map(|&(_, key, scope)| {
            self.find_duplicate(key, scope, new, campaign_lists.as_ref())
                .map(|found| new.duplicate_line(key, scope, found))
        })
    }

    /// The lists of the campaign of `list_id`; `None` for an undefined list (no CAMP hits).
    fn campaign_lists_of(&self, list_id: &str) -> Option<HashSet<String>> {
        let campaign = ci(&self.lists.get(&list_key(list_id))?.list.campaign_id);
        Some(self.lists.iter().filter(|(_, l)| ci(&l.list.campaign_id) == campaign).map(|(k, _)| k.clone()).collect())
    }

    /// The first lead loaded (`LIMIT 1` in primary-key order) that the check finds.
    fn find_duplicate(
        &self,
        key: Key,
        scope: Scope,
        new: &NewLead,
        campaign_lists: Option<&HashSet<String>>,
    ) -> Option<&LeadRecord> {
        let target = list_key(&new.list_id);
        let in_scope = |l: &LeadRecord| match scope {
            Scope::List => l.lead.list_id == target,
            Scope::Campaign => campaign_lists.is_some_and(|lists| lists.contains(&l.lead.list_id)),
            Scope::System => true,
        };
        let hit = |l: &&LeadRecord| in_scope(l) && new.matches(key, l);
        match key {
            // Keyed on the phone: only leads with that phone need a look.
            Key::Phone | Key::NamePhone => {
                self.by_phone.get(&new.phone)?.iter().filter_map(|&i| self.leads.get(i)).find(hit)
            }
            Key::PhoneAlt | Key::TitleAlt => self.leads.iter().find(hit),
        }
    }

    /// Stores the lead, its values cut to their columns; returns the new lead id.
    fn insert_lead(&mut self, new: &NewLead, p: &Params) -> u64 {
        let phone_code = p.get("phone_code");
        let lead = SimLead {
            lead_id: 0,
            list_id: list_key(&new.list_id),
            phone_code: if phone_code.is_empty() { "1".to_owned() } else { cut(&phone_code, 10) },
            phone_number: cut(&new.phone, 18),
            first_name: cut(&new.first_name, 30),
            last_name: cut(&new.last_name, 30),
            email: cut(&p.get("email"), 70),
            city: cut(&p.get("city"), 50),
            postal_code: cut(&p.get("postal_code"), 10),
            vendor_lead_code: cut(&p.get("vendor_lead_code"), 20),
        };
        self.push_lead(lead, cut(&new.title, 4), cut(&new.alt_phone, 12))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::vicidial::sim::model::{Permissions, api_user};
    use std::time::Instant;

    fn caller() -> Caller {
        Caller { name: "apiuser".to_owned(), user: api_user("apiuser", "x", 9, Permissions::all()) }
    }

    fn add(s: &mut SimState, pairs: &[(&str, &str)]) -> String {
        s.add_lead(&caller(), &Params::from_pairs(pairs))
    }

    fn state() -> SimState {
        let mut s = SimState::seeded(Instant::now());
        s.insert_list("1234", "CRM", "TESTCAMP", true, "2099-12-31");
        s.insert_list("1101", "CRM 2", "TESTCAMP", true, "2099-12-31");
        s.insert_list("2001", "Other", "SALES", true, "2099-12-31");
        s
    }

    #[test]
    fn the_checks_run_in_the_fixed_order_whatever_order_they_are_sent_in() {
        let mut s = state();
        add(&mut s, &[("phone_number", "7275551212"), ("list_id", "1234")]);
        let line =
            add(&mut s, &[("phone_number", "7275551212"), ("list_id", "1234"), ("duplicate_check", "dupsys-DUPLIST")]);
        assert_eq!(line, "ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275551212|1234|100001\n");
    }

    #[test]
    fn dupcamp_finds_the_phone_in_another_list_of_the_campaign_and_names_it() {
        let mut s = state();
        add(&mut s, &[("phone_number", "7275551212"), ("list_id", "1234")]);
        let camp = add(&mut s, &[("phone_number", "7275551212"), ("list_id", "1101"), ("duplicate_check", "DUPCAMP")]);
        assert_eq!(camp, "ERROR: add_lead DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS - 7275551212|1101|100001|1234\n");
        let other = add(&mut s, &[("phone_number", "7275551212"), ("list_id", "2001"), ("duplicate_check", "DUPCAMP")]);
        assert!(other.starts_with("SUCCESS:"), "another campaign: {other}");
        let sys =
            add(&mut s, &[("phone_number", "7275551212"), ("list_id", "2001"), ("duplicate_check", "DUPSYS90DAY")]);
        assert_eq!(sys, "ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM - 7275551212|2001|100001|1234\n");
        let undefined =
            add(&mut s, &[("phone_number", "7275551212"), ("list_id", "8888"), ("duplicate_check", "DUPCAMP")]);
        assert!(undefined.starts_with("SUCCESS:"), "an undefined list has no campaign: {undefined}");
    }

    #[test]
    fn name_phone_and_alt_phone_checks_use_their_own_data_layouts() {
        let mut s = state();
        add(
            &mut s,
            &[("phone_number", "7275551212"), ("list_id", "1234"), ("first_name", "Bob"), ("last_name", "Wilson")],
        );
        add(&mut s, &[("phone_number", "7275559999"), ("list_id", "1234"), ("alt_phone", "7275554444")]);
        let name =
            [("phone_number", "7275551212"), ("list_id", "1234"), ("first_name", "bob"), ("last_name", "WILSON")];
        let line = add(&mut s, &[&name[..], &[("duplicate_check", "DUPNAMEPHONELIST")]].concat());
        assert_eq!(line, "ERROR: add_lead DUPLICATE NAME PHONE IN LIST - bob|WILSON|7275551212|1234|100001\n");
        let alt =
            add(&mut s, &[("phone_number", "7275554444"), ("list_id", "1234"), ("duplicate_check", "DUPPHONEALTLIST")]);
        assert_eq!(alt, "ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275554444|1234|100002|ALT\n");
    }

    #[test]
    fn short_list_ids_go_to_999_and_the_phone_code_defaults_to_1() {
        let mut s = state();
        let line = add(&mut s, &[("phone_number", "7275551212"), ("list_id", "12")]);
        assert_eq!(line, "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275551212|999|100001|-5.00|apiuser\n");
        assert_eq!(s.leads[0].lead.phone_code, "1");
    }

    #[test]
    fn dnc_numbers_refuse_the_lead_when_asked_to_check() {
        let mut s = state();
        s.dnc.insert("727XXXXXXX".to_owned());
        s.campaign_dnc.insert(("testcamp".to_owned(), "7275550000".to_owned()));
        let unchecked = add(&mut s, &[("phone_number", "7275559999"), ("list_id", "1234")]);
        assert!(unchecked.starts_with("SUCCESS:"));
        let area = add(&mut s, &[("phone_number", "7275559999"), ("list_id", "1234"), ("dnc_check", "AREACODE")]);
        assert_eq!(area, "ERROR: add_lead PHONE NUMBER IN DNC - 7275559999|apiuser\n");
        let camp = [("phone_number", "7275550000"), ("campaign_dnc_check", "Y"), ("campaign_id", "TESTCAMP")];
        assert_eq!(add(&mut s, &camp), "ERROR: add_lead PHONE NUMBER IN CAMPAIGN DNC - 7275550000|TESTCAMP|apiuser\n");
    }

    #[test]
    fn lead_columns_are_cut_to_their_widths() {
        let mut s = state();
        let long = "x".repeat(80);
        let pairs = [
            ("phone_number", "7275551212"),
            ("list_id", "1234"),
            ("vendor_lead_code", long.as_str()),
            ("first_name", long.as_str()),
            ("city", long.as_str()),
            ("postal_code", long.as_str()),
            ("email", long.as_str()),
        ];
        add(&mut s, &pairs);
        let l = &s.leads[0].lead;
        let widths = [l.vendor_lead_code.len(), l.first_name.len(), l.city.len(), l.postal_code.len(), l.email.len()];
        assert_eq!(widths, [20, 30, 50, 10, 70]);
    }
}
