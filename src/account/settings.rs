//! What the account area itself needs from a tenant's `triggers.account`, whatever the vendor:
//! the feature switches, the CRM field mappings and the defaults of CreateAccount. Providers embed
//! the YAML pieces below in their own config struct (serde's `flatten` does not mix with
//! `deny_unknown_fields`) and hand back an [`AccountSettings`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::provider::{DesiredStatus, DialingBehavior};
use crate::registry::{provider::ValidateCtx, yaml::Value};

/// The IDs of the fields of the CRM's custom "Alianza Voice" table that SIP lines sync into.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = sip_table_aliases)]
pub struct SipTableConfig {
    /// Field ID of the "Dial Number" column: the line owner's caller-id number, else the
    /// line's emergency number. CRM name: `Custom_SIP_Table_dialNumber`.
    #[serde(alias = "Custom_SIP_Table_dialNumber")]
    pub dial_number: u32,
    /// Field ID of the "Display Name" column: the line owner's name, else the device name.
    /// CRM name: `Custom_SIP_Table_displayName`.
    #[serde(alias = "Custom_SIP_Table_displayName")]
    pub display_name: u32,
    /// Field ID of the "SIP Password" column. CRM name: `Custom_SIP_Table_password`.
    #[serde(alias = "Custom_SIP_Table_password")]
    pub password: u32,
    /// Field ID of the "Port Number" column: the line number on its device.
    /// CRM name: `Custom_SIP_Table_portNumber`.
    #[serde(alias = "Custom_SIP_Table_portNumber")]
    pub port_number: u32,
    /// Field ID of the "User Name" column: the SIP user name, which rows are matched on.
    /// CRM name: `Custom_SIP_Table_userName`.
    #[serde(alias = "Custom_SIP_Table_userName")]
    pub user_name: u32,
}

/// The custom SIP table's field IDs, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipTable {
    pub dial_number: u32,
    pub display_name: u32,
    pub password: u32,
    pub port_number: u32,
    pub user_name: u32,
}

/// `(canonical key, CRM alias)` of each custom_sip_table key, in YAML order.
const SIP_TABLE_KEYS: [(&str, &str); 5] = [
    ("dial_number", "Custom_SIP_Table_dialNumber"),
    ("display_name", "Custom_SIP_Table_displayName"),
    ("password", "Custom_SIP_Table_password"),
    ("port_number", "Custom_SIP_Table_portNumber"),
    ("user_name", "Custom_SIP_Table_userName"),
];

fn sip_table_aliases(schema: &mut schemars::Schema) {
    schema_aliases(schema, &SIP_TABLE_KEYS);
}

/// Adds each `(canonical, alias)` pair's alias to a struct's JSON Schema (schemars leaves serde
/// aliases out), so that editors accept the CRM's names: the alias documents itself as its
/// canonical key, and a required key may be given under either name (not both).
pub fn schema_aliases(schema: &mut schemars::Schema, pairs: &[(&str, &str)]) {
    use serde_json::{Value as Json, json};
    let required: Vec<String> = schema
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut either = Vec::new();
    if let Some(Json::Object(props)) = schema.get_mut("properties") {
        for (canonical, alias) in pairs {
            let Some(mut prop) = props.get(*canonical).cloned() else { continue };
            if let Json::Object(p) = &mut prop {
                p.insert("description".into(), json!(format!("The CRM's name for `{canonical}`.")));
            }
            props.insert((*alias).to_owned(), prop);
            if required.iter().any(|r| r == canonical) {
                either.push(json!({ "oneOf": [{ "required": [canonical] }, { "required": [alias] }] }));
            }
        }
    }
    let still_required: Vec<&String> =
        required.iter().filter(|r| !pairs.iter().any(|(c, _)| *c == r.as_str())).collect();
    schema.insert("required".into(), json!(still_required));
    if !either.is_empty() {
        schema.insert("allOf".into(), Json::Array(either));
    }
}

impl SipTableConfig {
    /// Checks the IDs (positive, all different). `raw` is the trigger mapping as written, so a
    /// problem points at the key the operator wrote (the canonical name or the CRM alias).
    pub fn check(&self, raw: &Value, ctx: &mut ValidateCtx<'_>) -> Option<SipTable> {
        let ids = [self.dial_number, self.display_name, self.password, self.port_number, self.user_name];
        let table = raw.get("custom_sip_table");
        let written = |i: usize| {
            let (canonical, alias) = SIP_TABLE_KEYS[i];
            if table.and_then(|t| t.get(alias)).is_some() { alias } else { canonical }
        };
        check_ids(ids, "custom_sip_table.", written, ctx)
    }
}

/// The CRM page's flat keys (`Custom_SIP_Table_dialNumber`, ... directly under the trigger), in
/// the order of [`SipTableConfig`]'s fields.
pub const FLAT_SIP_TABLE_KEYS: [&str; 5] =
    [SIP_TABLE_KEYS[0].1, SIP_TABLE_KEYS[1].1, SIP_TABLE_KEYS[2].1, SIP_TABLE_KEYS[3].1, SIP_TABLE_KEYS[4].1];

/// The SIP table given as the CRM page's five flat keys: all five are needed, each checked as in
/// `custom_sip_table`; `None` (with the problems said) otherwise.
pub fn flat_sip_table(ids: [Option<u32>; 5], ctx: &mut ValidateCtx<'_>) -> Option<SipTable> {
    let before = ctx.problem_count();
    for (id, key) in ids.iter().zip(FLAT_SIP_TABLE_KEYS) {
        if id.is_none() {
            ctx.problem(
                key,
                "missing: the SIP table's field IDs come as all five Custom_SIP_Table_* keys (or in custom_sip_table:)",
            );
        }
    }
    if ctx.problem_count() != before {
        return None;
    }
    check_ids(ids.map(Option::unwrap_or_default), "", |i| FLAT_SIP_TABLE_KEYS[i], ctx)
}

/// Field IDs start at 1 and are all different; a problem names the key as written
/// (`prefix` + `name_of`).
fn check_ids<'a>(
    ids: [u32; 5],
    prefix: &str,
    name_of: impl Fn(usize) -> &'a str,
    ctx: &mut ValidateCtx<'_>,
) -> Option<SipTable> {
    let before = ctx.problem_count();
    for (i, id) in ids.iter().enumerate() {
        let key = format!("{prefix}{}", name_of(i));
        if *id == 0 {
            ctx.problem(&key, "field IDs start at 1");
        } else if let Some(first) = ids[..i].iter().position(|other| other == id) {
            ctx.problem(
                &key,
                format!(
                    "field ID {id} is also `{}`: each column of the SIP table needs its own field ID",
                    name_of(first)
                ),
            );
        }
    }
    let [dial_number, display_name, password, port_number, user_name] = ids;
    (ctx.problem_count() == before).then_some(SipTable { dial_number, display_name, password, port_number, user_name })
}

/// Where the CRM keeps the account number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountNumberField {
    /// `customer.nickname` (the default).
    Nickname,
    /// `customer.fields[<name>]`.
    Field(String),
}

impl AccountNumberField {
    /// From the YAML value: blank means the default (`nickname`), as on the CRM's trigger page.
    pub fn from_yaml(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("") | Some("nickname") => Self::Nickname,
            Some(other) => Self::Field(other.to_owned()),
        }
    }

    /// The request field path, for field violations: `customer.nickname`, `customer.fields.acct`.
    pub fn field_path(&self) -> String {
        match self {
            Self::Nickname => "customer.nickname".to_owned(),
            Self::Field(name) => format!("customer.fields.{name}"),
        }
    }
}

/// CRM status -> vendor status. Statuses not listed are DISABLED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMap(BTreeMap<String, DesiredStatus>);

impl Default for StatusMap {
    /// The CRM page's rule: `current` is ACTIVE, anything else DISABLED.
    fn default() -> Self {
        Self(BTreeMap::from([("current".to_owned(), DesiredStatus::Active)]))
    }
}

impl StatusMap {
    /// CRM statuses are matched without regard to case or surrounding blanks.
    pub fn map(&self, crm_status: &str) -> DesiredStatus {
        self.0.get(&crm_status.trim().to_lowercase()).copied().unwrap_or(DesiredStatus::Disabled)
    }

    /// Checks a `status_map` as written: no blank keys, no two keys that differ only in case, and
    /// at least one status that maps to ACTIVE (or every customer would be disabled).
    pub fn check(written: &BTreeMap<String, DesiredStatus>, ctx: &mut ValidateCtx<'_>) -> Option<Self> {
        let before = ctx.problem_count();
        let mut map = BTreeMap::new();
        let mut spelled: BTreeMap<String, &str> = BTreeMap::new();
        for (key, status) in written {
            let normal = key.trim().to_lowercase();
            if normal.is_empty() {
                ctx.problem_at_key(&format!("status_map.{key}"), "a CRM status cannot be blank");
                continue;
            }
            if let Some(first) = spelled.get(&normal) {
                ctx.problem_at_key(
                    &format!("status_map.{key}"),
                    format!("`{key}` and `{first}` are the same CRM status (case does not matter); keep one"),
                );
                continue;
            }
            spelled.insert(normal.clone(), key);
            map.insert(normal, *status);
        }
        if written.is_empty() || !map.values().any(|s| *s == DesiredStatus::Active) {
            ctx.problem(
                "status_map",
                "no CRM status maps to ACTIVE, so every customer would be DISABLED; e.g. `{ current: ACTIVE }`",
            );
        }
        (ctx.problem_count() == before).then_some(Self(map))
    }
}

/// The account area's settings of one tenant, checked.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// GetAccountStatus and the status follow-up (SetCustomerStatus).
    pub customer_status: bool,
    /// CreateAccount, SyncSipLines, ListSipLines, DeleteAccount.
    pub synchro_console: bool,
    /// The vendor's admin portal, shown on the status panel ("Open in GUI").
    pub admin_portal_url: String,
    pub account_number_field: AccountNumberField,
    pub status_map: StatusMap,
    /// CreateAccount's billing cycle day when the request leaves it 0.
    pub default_billing_cycle_day: Option<u8>,
    /// CreateAccount's dialling behaviour when the request leaves it unspecified.
    pub default_dialing_behavior: Option<DialingBehavior>,
    /// `None` when the tenant declares no custom_sip_table (the SIP-table calls then refuse).
    pub sip_table: Option<SipTable>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_status_map_is_the_crm_rule() {
        let map = StatusMap::default();
        assert_eq!(map.map("current"), DesiredStatus::Active);
        assert_eq!(map.map(" Current "), DesiredStatus::Active);
        assert_eq!(map.map("suspended"), DesiredStatus::Disabled);
        assert_eq!(map.map(""), DesiredStatus::Disabled);
    }

    #[test]
    fn a_blank_account_number_field_is_nickname() {
        assert_eq!(AccountNumberField::from_yaml(None), AccountNumberField::Nickname);
        assert_eq!(AccountNumberField::from_yaml(Some("  ")), AccountNumberField::Nickname);
        assert_eq!(AccountNumberField::from_yaml(Some("acct")).field_path(), "customer.fields.acct");
    }
}
