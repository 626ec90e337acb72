//! Campaigns, lists and DNC numbers: campaigns_list, add_list, list_info and add_dnc_phone.

use super::{
    exchange::Params,
    state::{Caller, Campaign, ListRecord, SimState, admin_error, ci, delimiter, list_key},
    strip::{cut, digits},
};

/// The call times of a fresh install (`vicidial_call_times`), for add_list's local_call_time.
const CALL_TIMES: [&str; 6] = ["24hours", "9am-9pm", "9am-5pm", "12pm-5pm", "12pm-9pm", "5pm-9pm"];
const TZ_METHODS: [&str; 4] = ["COUNTRY_AND_AREA_CODE", "POSTAL_CODE", "NANPA_PREFIX", "OWNER_TIME_ZONE_CODE"];
const CAMPAIGN_COLUMNS: [&str; 12] = [
    "campaign_id",
    "campaign_name",
    "active",
    "user_group",
    "dial_method",
    "dial_level",
    "lead_order",
    "dial_statuses",
    "dial_timeout",
    "dial_prefix",
    "manual_dial_prefix",
    "three_way_dial_prefix",
];
const LIST_COLUMNS: [&str; 8] = [
    "list_id",
    "list_name",
    "campaign_id",
    "active",
    "list_changedate",
    "list_lastcalldate",
    "expiration_date",
    "resets_today",
];

/// A campaign row; the settings are a fresh campaign's (ratio dialing, NEW and NA leads).
fn campaign_row(c: &Campaign, dl: &str) -> String {
    [c.id.as_str(), &c.name, "Y", "---ALL---", "RATIO", "1", "DOWN", "NEW NA", "60", "9", "", ""].join(dl)
}

fn yes_no(b: bool) -> &'static str {
    if b { "Y" } else { "N" }
}

impl SimState {
    pub fn campaigns_list(&self, c: &Caller, p: &Params) -> String {
        let wanted = ci(&p.get("campaign_id"));
        let dl = delimiter(&p.get("stage"));
        let rows: Vec<String> = self
            .campaigns
            .iter()
            .filter(|(key, _)| wanted.is_empty() || **key == wanted)
            .map(|(_, camp)| campaign_row(camp, dl) + "\n")
            .collect();
        if rows.is_empty() {
            return format!("ERROR: campaigns_list THIS USER HAS NO VIEWABLE CAMPAIGNS: {}|\n", c.name);
        }
        let header = if p.get("header") == "YES" { CAMPAIGN_COLUMNS.join(dl) + "\n" } else { String::new() };
        header + &rows.concat()
    }

    pub fn add_list(&mut self, c: &Caller, p: &Params) -> String {
        let err = |reason: &str, data: &str| admin_error("add_list", reason, &c.name, data);
        let (list_id, name, campaign) = (digits(&p.get("list_id")), p.get("list_name"), p.get("campaign_id"));
        if !(2..=14).contains(&list_id.len()) || !(1..=8).contains(&campaign.len()) || !(2..=30).contains(&name.len()) {
            return err("YOU MUST USE ALL REQUIRED FIELDS", &format!("{list_id}|{name}|{campaign}"));
        }
        if !self.campaign_exists(&campaign) {
            return err("CAMPAIGN DOES NOT EXIST", &campaign);
        }
        if self.lists.contains_key(&list_key(&list_id)) {
            return err("LIST ALREADY EXISTS", &list_id);
        }
        if let Some(line) = self.add_list_option_error(c, p, &list_id) {
            return line;
        }
        let expiration = p.get("expiration_date");
        let expiration = if expiration.len() < 10 { "2099-12-31".to_owned() } else { cut(&expiration, 10) };
        // active is not validated; anything but Y is an inactive list (default N).
        self.insert_list(&list_id, &name, &campaign, p.get("active") == "Y", &expiration);
        format!("SUCCESS: add_list LIST HAS BEEN ADDED - {}|{list_id}|{name}|{campaign}\n", c.name)
    }

    /// add_list's optional fields, in the source's order. The simulator has no scripts,
    /// in-groups or custom fields, so naming one is refused.
    fn add_list_option_error(&self, c: &Caller, p: &Params, list_id: &str) -> Option<String> {
        let err = |what: &str, data: &str| {
            let reason = format!("{what}, THIS IS AN OPTIONAL FIELD");
            Some(admin_error("add_list", &reason, &c.name, data))
        };
        let script = p.get("script");
        if !script.is_empty() {
            return err("SCRIPT DOES NOT EXIST", &script);
        }
        let in_group = p.get("drop_inbound_group");
        if !in_group.is_empty() {
            return err("IN-GROUP DOES NOT EXIST", &in_group);
        }
        let reset_time = p.get("reset_time");
        if (1..=3).contains(&reset_time.len()) {
            return err("RESET TIME IS NOT VALID", &reset_time);
        }
        let copy = p.get("custom_fields_copy");
        if (2..=14).contains(&copy.len()) {
            if !self.lists.contains_key(&list_key(&copy)) {
                return err("CUSTOM FIELDS LIST ID TO COPY FROM DOES NOT EXIST", &format!("{list_id}|{copy}|0"));
            }
            return err("CUSTOM FIELDS LIST ID TO COPY FROM HAS NO CUSTOM FIELDS", &format!("{list_id}|{copy}|0"));
        }
        let tz = p.get("tz_method");
        if !tz.is_empty() && !TZ_METHODS.contains(&tz.as_str()) {
            return err("TIME ZONE METHOD IS NOT VALID", &tz);
        }
        let call_time = p.get("local_call_time");
        if !call_time.is_empty()
            && call_time != "campaign"
            && !CALL_TIMES.iter().any(|t| t.eq_ignore_ascii_case(&call_time))
        {
            return err("LOCAL CALL TIME DOES NOT EXIST", &call_time);
        }
        for (field, name) in [
            ("xferconf_one", "ONE"),
            ("xferconf_two", "TWO"),
            ("xferconf_three", "THREE"),
            ("xferconf_four", "FOUR"),
            ("xferconf_five", "FIVE"),
        ] {
            let value = p.get(field);
            if value.len() > 50 {
                return err(&format!("TRANSFER CONF OVERRIDE {name} IS NOT VALID"), &value);
            }
        }
        None
    }

    pub fn list_info(&self, c: &Caller, p: &Params) -> String {
        let err = |reason: &str, data: &str| admin_error("list_info", reason, &c.name, data);
        // list_info keeps letters: they pass the strip and then match no list.
        let list_id = p.get("list_id");
        if !(2..=14).contains(&list_id.len()) {
            let data = format!("{list_id}|{}|{}", p.get("list_name"), p.get("campaign_id"));
            return err("YOU MUST USE ALL REQUIRED FIELDS", &data);
        }
        let found = list_id.bytes().all(|b| b.is_ascii_digit()).then(|| self.lists.get(&list_key(&list_id))).flatten();
        let Some(rec) = found else { return err("LIST DOES NOT EXIST", &list_id) };
        self.list_info_rows(&list_id, rec, p)
    }

    /// The optional header and the list's row, which always ends with a delimiter.
    fn list_info_rows(&self, list_id: &str, rec: &ListRecord, p: &Params) -> String {
        let dl = delimiter(&p.get("stage"));
        let (counts, dialable) = (p.get("leads_counts") == "Y", p.get("dialable_count") == "Y");
        let l = &rec.list;
        let mut header = LIST_COLUMNS.join(dl);
        let mut row =
            [list_id, &l.name, &l.campaign_id, yes_no(l.active), &rec.changed, "", &rec.expiration, "0"].join(dl);
        // Nothing dials in the simulator: every lead stays NEW and dialable.
        let leads = self.leads.iter().filter(|lead| lead.lead.list_id == l.list_id).count();
        if counts {
            header.push_str(&format!("{dl}all_leads_count{dl}new_leads_count"));
            row.push_str(&format!("{dl}{leads}{dl}{leads}"));
        }
        row.push_str(dl);
        if dialable {
            header.push_str(&format!("{dl}dialable_count"));
            row.push_str(&leads.to_string());
        }
        let header = if p.get("header") == "YES" { header + "\n" } else { String::new() };
        format!("{header}{row}\n")
    }

    pub fn add_dnc_phone(&mut self, c: &Caller, p: &Params) -> String {
        let err = |reason: &str, data: &str| admin_error("add_dnc_phone", reason, &c.name, data);
        let (phone, campaign) = (p.get("phone_number"), p.get("campaign_id"));
        if phone.len() < 6 || campaign.is_empty() {
            return err("YOU MUST USE ALL REQUIRED FIELDS", &format!("{phone}|{campaign}"));
        }
        // The columns: phone 18, campaign 8.
        let (stored_phone, stored_campaign) = (cut(&phone, 18), ci(&cut(&campaign, 8)));
        let added = if campaign == "SYSTEM_INTERNAL" {
            self.dnc.insert(stored_phone)
        } else {
            self.campaign_dnc.insert((stored_campaign, stored_phone))
        };
        if !added {
            return err("DNC NUMBER ALREADY EXISTS", &format!("{phone}|{campaign}"));
        }
        format!("SUCCESS: add_dnc_phone DNC NUMBER HAS BEEN ADDED - {}|{phone}|{campaign}\n", c.name)
    }
}
