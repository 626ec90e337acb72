//! The SIP-line sync plan: what to add, update and delete so that the CRM's custom SIP table
//! matches the vendor. Pure: no I/O, so every case is a unit test.
//!
//! A table row is the tenant's field IDs mapped to text, as the CRM's custom table stores it.
//! Rows are matched on the SIP user name (unique platform-wide at the vendor).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{provider::SipLine, settings::SipTable};
use crate::platform::events::{Event, EventType};

/// One row of the custom SIP table: field ID -> value.
pub type Fields = BTreeMap<u32, String>;

/// A stored row and its match key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub sip_username: String,
    pub fields: Fields,
}

/// FULL makes the table equal to the vendor; ADD_ONLY never deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Full,
    AddOnly,
}

/// What a sync does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Vendor lines with no row yet.
    pub added: Vec<SipLine>,
    /// Vendor lines whose row differs.
    pub updated: Vec<SipLine>,
    /// Rows the vendor no longer has (FULL only).
    pub deleted: Vec<StoredRow>,
    /// Rows the vendor no longer has that ADD_ONLY keeps.
    pub kept: Vec<StoredRow>,
    /// Vendor lines whose row already matches.
    pub unchanged: Vec<SipLine>,
}

impl SyncPlan {
    /// Whether applying the plan writes anything.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// The `sip_lines.synced` event of a plan that changed the table: the lines added, updated and
/// deleted; the SIP passwords only in the copy for endpoints with `include_passwords: true`.
pub fn synced_event(tenant: &str, number: &str, plan: &SyncPlan) -> Event {
    let line = |l: &SipLine, password: bool| {
        let mut v = serde_json::json!({
            "line_number": l.line_number,
            "sip_username": l.sip_username,
            "display_name": l.display_name,
            "dial_number": l.dial_number,
            "mac_address": l.mac_address,
            "emergency_number": l.emergency_number,
        });
        if password {
            v["sip_password"] = l.sip_password.clone().into();
        }
        v
    };
    let data = |password: bool| {
        serde_json::json!({
            "tenant": tenant,
            "account_number": number,
            "added": plan.added.iter().map(|l| line(l, password)).collect::<Vec<_>>(),
            "updated": plan.updated.iter().map(|l| line(l, password)).collect::<Vec<_>>(),
            "deleted": plan.deleted.iter().map(|r| serde_json::json!({ "sip_username": r.sip_username })).collect::<Vec<_>>(),
        })
    };
    Event::new(EventType::SipLinesSynced, data(false)).with_secret_data(data(true))
}

/// The row a vendor line becomes in the tenant's table.
pub fn row_of(line: &SipLine, table: &SipTable) -> Fields {
    BTreeMap::from([
        (table.dial_number, line.dial_number.clone()),
        (table.display_name, line.display_name.clone()),
        (table.password, line.sip_password.clone()),
        (table.port_number, line.line_number.clone()),
        (table.user_name, line.sip_username.clone()),
    ])
}

/// A stored row read back as a line, through the tenant's current field IDs (values the table
/// does not hold, such as the MAC address, stay empty).
pub fn line_of(row: &StoredRow, table: &SipTable) -> SipLine {
    let get = |id: u32| row.fields.get(&id).cloned().unwrap_or_default();
    SipLine {
        line_number: get(table.port_number),
        sip_username: row.sip_username.clone(),
        sip_password: get(table.password),
        display_name: get(table.display_name),
        dial_number: get(table.dial_number),
        ..SipLine::default()
    }
}

/// Plans a sync of `stored` (the table) to `vendor` (the vendor's lines).
///
/// Vendor lines without a SIP user name cannot be matched and are left out; if the vendor lists
/// one user name twice, its first line counts.
pub fn plan(stored: Vec<StoredRow>, vendor: &[SipLine], table: &SipTable, mode: SyncMode) -> SyncPlan {
    let mut by_key: HashMap<&str, &StoredRow> = stored.iter().map(|r| (r.sip_username.as_str(), r)).collect();
    let mut seen: HashSet<&str> = HashSet::with_capacity(vendor.len());
    let mut out = SyncPlan::default();
    for line in vendor {
        let key = line.sip_username.as_str();
        if key.is_empty() || !seen.insert(key) {
            continue;
        }
        match by_key.remove(key) {
            None => out.added.push(line.clone()),
            Some(row) if row.fields == row_of(line, table) => out.unchanged.push(line.clone()),
            Some(_) => out.updated.push(line.clone()),
        }
    }
    let gone_keys: HashSet<String> = by_key.into_keys().map(str::to_owned).collect();
    let mut gone: Vec<StoredRow> = stored.into_iter().filter(|r| gone_keys.contains(&r.sip_username)).collect();
    gone.sort_by(|a, b| a.sip_username.cmp(&b.sip_username));
    match mode {
        SyncMode::Full => out.deleted = gone,
        SyncMode::AddOnly => out.kept = gone,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: SipTable = SipTable { dial_number: 1, display_name: 2, password: 3, port_number: 4, user_name: 5 };

    fn line(user: &str, password: &str) -> SipLine {
        SipLine {
            line_number: "1".into(),
            sip_username: user.into(),
            sip_password: password.into(),
            display_name: format!("{user} name"),
            dial_number: "8015550100".into(),
            ..SipLine::default()
        }
    }

    fn stored(l: &SipLine) -> StoredRow {
        StoredRow { sip_username: l.sip_username.clone(), fields: row_of(l, &TABLE) }
    }

    fn names(lines: &[SipLine]) -> Vec<&str> {
        lines.iter().map(|l| l.sip_username.as_str()).collect()
    }

    #[test]
    fn full_sync_adds_updates_deletes_and_keeps_the_unchanged() {
        let table = vec![stored(&line("same", "p")), stored(&line("changed", "old")), stored(&line("gone", "p"))];
        let vendor = [line("same", "p"), line("changed", "new"), line("new", "p")];
        let plan = plan(table, &vendor, &TABLE, SyncMode::Full);
        assert_eq!(names(&plan.added), ["new"]);
        assert_eq!(names(&plan.updated), ["changed"]);
        assert_eq!(names(&plan.unchanged), ["same"]);
        assert_eq!(plan.deleted.iter().map(|r| r.sip_username.as_str()).collect::<Vec<_>>(), ["gone"]);
        assert!(plan.kept.is_empty());
    }

    #[test]
    fn add_only_never_deletes() {
        let table = vec![stored(&line("gone", "p"))];
        let plan = plan(table, &[line("new", "p")], &TABLE, SyncMode::AddOnly);
        assert!(plan.deleted.is_empty());
        assert_eq!(plan.kept.len(), 1);
        assert_eq!(names(&plan.added), ["new"]);
    }

    #[test]
    fn a_changed_field_mapping_updates_every_row() {
        let l = line("a", "p");
        let old = StoredRow { sip_username: "a".into(), fields: row_of(&l, &SipTable { dial_number: 9, ..TABLE }) };
        let plan = plan(vec![old], &[l], &TABLE, SyncMode::Full);
        assert_eq!(names(&plan.updated), ["a"]);
    }

    #[test]
    fn duplicate_and_nameless_vendor_lines_are_left_out() {
        let plan = plan(vec![], &[line("a", "1"), line("a", "2"), line("", "3")], &TABLE, SyncMode::Full);
        assert_eq!(plan.added.len(), 1);
        assert_eq!(plan.added[0].sip_password, "1");
    }

    #[test]
    fn an_empty_vendor_and_an_empty_table_plan_nothing() {
        let plan = plan(vec![], &[], &TABLE, SyncMode::Full);
        assert!(plan.is_noop());
        assert_eq!(plan, SyncPlan::default());
    }

    #[test]
    fn rows_read_back_as_lines_through_the_field_ids() {
        let l = line("a", "secret");
        let back = line_of(&stored(&l), &TABLE);
        assert_eq!(back.sip_password, "secret");
        assert_eq!(back.display_name, l.display_name);
        assert_eq!(back.line_number, "1");
    }
}
