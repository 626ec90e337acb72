use super::*;
use crate::{
    ops::auth::TokenHash,
    registry::{Diagnostic, file, secrets::SystemSecrets},
};

/// A tenant file `acme.yaml` with `trigger` (indented two spaces) under `triggers.account`.
fn file_with(trigger: &str) -> String {
    let token = TokenHash::of_token("t");
    let body: String = trigger.lines().map(|l| format!("    {l}\n")).collect();
    format!("tenant: acme\naccess:\n  tokens: [\"{token}\"]\ntriggers:\n  account:\n{body}")
}

const GOOD: &str = "\
provider: alianza
enabled: true
customer_status: true
synchro_console: true
api_url: https://api.alianza.com
admin_portal_url: https://admin.alianza.com
partition_id: p-123
API_USERNAME: crm@acme.example
API_PASSWORD: s3cret
Account_Number_Field: acct
status_map: { current: ACTIVE, trial: ACTIVE, suspended: DISABLED }
account_defaults:
  time_zone: US/Eastern
  regulatory_type: RESIDENTIAL
  inbound_rate_plan_product_id: rp-1
  dialing_behavior: TEN_DIGIT
  billing_cycle_day: 15
custom_sip_table:
  Custom_SIP_Table_dialNumber: 101
  display_name: 102
  password: 103
  port_number: 104
  user_name: 105
timeout_ms: 2000";

fn problems(trigger: &str) -> Vec<String> {
    match file::validate(
        "providers.d/acme.yaml",
        "acme",
        file_with(trigger).as_bytes(),
        &[&crate::account::TRIGGERS],
        &SystemSecrets,
    ) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(Diagnostic::to_string).collect(),
    }
}

fn assert_problem(trigger: &str, expected: &str) {
    let found = problems(trigger);
    assert!(found.iter().any(|p| p.contains(expected)), "expected `{expected}` in {found:#?}");
}

/// `GOOD` with the line starting with `key` replaced by `line` (or removed if empty).
fn with(key: &str, line: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut replaced = false;
    for l in GOOD.lines() {
        if !replaced && l.starts_with(key) {
            replaced = true;
            if !line.is_empty() {
                out.push(line);
            }
        } else {
            out.push(l);
        }
    }
    assert!(replaced, "no line starts with {key}");
    out.join("\n")
}

#[test]
fn a_complete_trigger_with_crm_aliases_is_valid() {
    assert_eq!(problems(GOOD), Vec::<String>::new());
}

#[test]
fn a_minimal_trigger_is_valid_and_its_switches_default_off() {
    let minimal = "provider: alianza\napi_url: simulator\npartition_id: p\nusername: u\npassword: p";
    assert_eq!(problems(minimal), Vec::<String>::new());
    let value: Value = serde_yaml::from_str(minimal).unwrap();
    let cfg: AlianzaConfig = crate::registry::yaml::deserialize(&value).unwrap();
    assert!(cfg.enabled && !cfg.customer_status && !cfg.synchro_console);
}

#[test]
fn unknown_keys_are_reported_at_their_position() {
    assert_problem(
        &format!("{GOOD}\nsync_mode: full"),
        "acme.yaml:30:5: triggers.account.sync_mode: unknown field `sync_mode`",
    );
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    assert_problem(
        &with("  port_number", "  port_number: x"),
        "acme.yaml:27:20: triggers.account.custom_sip_table.port_number: invalid type: string \"x\", expected u32",
    );
    assert_problem(
        &with("customer_status", "customer_status: maybe"),
        "triggers.account.customer_status: invalid type",
    );
}

#[test]
fn an_alias_and_its_canonical_key_both_set_is_an_error() {
    assert_problem(&format!("{GOOD}\nusername: other"), "triggers.account.username: `username` is set twice");
    assert_problem(
        &with("  password: 103", "  password: 103\n  Custom_SIP_Table_password: 106"),
        "`password` is set twice",
    );
}

#[test]
fn an_unset_env_secret_is_named_without_a_value() {
    assert_problem(
        &with("API_PASSWORD", "API_PASSWORD: ${env:PATCHBAY_TEST_SURELY_UNSET_ALIANZA_PASSWORD}"),
        "acme.yaml:14:19: triggers.account.API_PASSWORD: environment variable `PATCHBAY_TEST_SURELY_UNSET_ALIANZA_PASSWORD` is not set",
    );
}

#[test]
fn a_missing_file_secret_is_named() {
    assert_problem(
        &with("API_USERNAME", "API_USERNAME: ${file:/nonexistent/alianza-user}"),
        "triggers.account.API_USERNAME: cannot read secret file `/nonexistent/alianza-user`: no such file",
    );
}

#[test]
fn an_empty_literal_password_is_refused() {
    assert_problem(&with("API_PASSWORD", "API_PASSWORD: \"\""), "triggers.account.API_PASSWORD: must not be empty");
}

#[test]
fn a_status_map_value_other_than_active_or_disabled_is_refused() {
    assert_problem(
        &with("status_map", "status_map: { current: ACTIVE, overdue: SUSPENDED }"),
        "triggers.account.status_map.overdue: unknown variant `SUSPENDED`, expected `ACTIVE` or `DISABLED`",
    );
}

#[test]
fn a_status_map_without_active_or_with_case_twins_is_refused() {
    assert_problem(&with("status_map", "status_map: { current: DISABLED }"), "no CRM status maps to ACTIVE");
    assert_problem(&with("status_map", "status_map: {}"), "no CRM status maps to ACTIVE");
    assert_problem(
        &with("status_map", "status_map: { current: ACTIVE, Current: DISABLED }"),
        "are the same CRM status",
    );
}

#[test]
fn duplicate_custom_sip_table_ids_point_at_the_key_as_written() {
    assert_problem(
        &with("  display_name", "  display_name: 101"),
        "acme.yaml:25:21: triggers.account.custom_sip_table.display_name: field ID 101 is also `Custom_SIP_Table_dialNumber`",
    );
    assert_problem(&with("  user_name", "  user_name: 0"), "custom_sip_table.user_name: field IDs start at 1");
}

#[test]
fn bad_urls_are_refused() {
    for bad in [
        "api_url: ftp://api.alianza.com",
        "api_url: not a url",
        "api_url: https://api.alianza.com/v2",
        "api_url: https://x?y=1",
    ] {
        assert_problem(&with("api_url", bad), "triggers.account.api_url: must be `simulator` or Alianza's base URL");
    }
    assert_problem(
        &with("admin_portal_url", "admin_portal_url: admin.alianza.com"),
        "admin_portal_url: must be an http",
    );
}

#[test]
fn a_missing_required_key_is_named() {
    assert_problem(&with("partition_id", ""), "triggers.account: missing field `partition_id`");
    assert_problem(
        &with("partition_id", "partition_id: \"a b\""),
        "triggers.account.partition_id: must be your Alianza partition id",
    );
}

#[test]
fn synchro_console_needs_account_defaults_and_the_sip_table() {
    let without_table: String = GOOD.split("custom_sip_table:").next().unwrap().to_owned() + "timeout_ms: 2000";
    assert_problem(&without_table, "triggers.account.custom_sip_table: missing: synchro_console: true needs");
    assert_problem(
        &with("  regulatory_type", ""),
        "account_defaults.regulatory_type: missing: synchro_console: true needs it",
    );
    let off = without_table.replace("synchro_console: true", "synchro_console: false");
    assert_eq!(problems(&off), Vec::<String>::new());
}

#[test]
fn account_defaults_are_checked() {
    assert_problem(
        &with("  billing_cycle_day", "  billing_cycle_day: 31"),
        "account_defaults.billing_cycle_day: must be 1-28",
    );
    assert_problem(
        &with("  dialing_behavior", "  dialing_behavior: NINE_DIGIT"),
        "account_defaults.dialing_behavior: unknown variant `NINE_DIGIT`",
    );
    assert_problem(&with("  regulatory_type", "  regulatory_type: MILITARY"), "unknown variant `MILITARY`");
    assert_problem(
        &with("  regulatory_type", "  platform_type: V2_0"),
        "unknown variant `V2_0`, expected `CPE1` or `CPE2`",
    );
}

#[test]
fn a_time_zone_outside_alianzas_fifteen_is_refused_with_the_list() {
    let found = problems(&with("  time_zone", "  time_zone: America/New_York"));
    let expected = "account_defaults.time_zone: `America/New_York` is not one of Alianza's time zones: US/Samoa, \
                    US/Hawaii, US/Alaska, US/Pacific, US/Arizona, US/Mountain, US/Central, US/Eastern, \
                    America/St_Thomas, Canada/Pacific, Canada/Mountain, Canada/Central, Canada/Eastern, \
                    Canada/Atlantic, Canada/Newfoundland";
    assert!(found.iter().any(|p| p.contains(expected)), "{found:#?}");
    for zone in crate::account::alianza::wire::TIME_ZONES {
        assert_eq!(problems(&with("  time_zone", &format!("  time_zone: {zone}"))), Vec::<String>::new(), "{zone}");
    }
}

#[test]
fn the_inbound_rate_plan_is_optional_and_a_platform_type_may_be_set() {
    let trigger = with("  inbound_rate_plan_product_id", "  platform_type: CPE2");
    assert_eq!(problems(&trigger), Vec::<String>::new());
}

/// `GOOD` with its `custom_sip_table:` mapping given as the CRM page's five flat keys.
fn flat_sip_table() -> String {
    let head = GOOD.split("custom_sip_table:").next().unwrap();
    format!(
        "{head}Custom_SIP_Table_dialNumber: 101\nCustom_SIP_Table_displayName: 102\nCustom_SIP_Table_password: 103\n\
         Custom_SIP_Table_portNumber: 104\nCustom_SIP_Table_userName: 105\ntimeout_ms: 2000"
    )
}

#[test]
fn the_crm_pages_flat_sip_table_keys_are_accepted_directly_under_the_trigger() {
    assert_eq!(problems(&flat_sip_table()), Vec::<String>::new());
}

#[test]
fn flat_sip_table_keys_are_checked_like_the_mapping_and_all_five_are_needed() {
    assert_problem(
        &flat_sip_table().replace("Custom_SIP_Table_portNumber: 104", "Custom_SIP_Table_portNumber: 101"),
        "triggers.account.Custom_SIP_Table_portNumber: field ID 101 is also `Custom_SIP_Table_dialNumber`",
    );
    assert_problem(
        &flat_sip_table().replace("Custom_SIP_Table_userName: 105\n", ""),
        "triggers.account.Custom_SIP_Table_userName: missing: the SIP table's field IDs come as all five",
    );
}

#[test]
fn the_sip_table_in_both_places_is_an_error_naming_both() {
    let both = format!("{GOOD}\nCustom_SIP_Table_userName: 105");
    assert_problem(&both, "triggers.account.Custom_SIP_Table_userName: set both here and in `custom_sip_table`");
}

#[test]
fn a_timeout_out_of_range_is_refused() {
    assert_problem(&with("timeout_ms", "timeout_ms: 5"), "triggers.account.timeout_ms: must be 100-15000");
    // Seven requests of a minute each would outlive a status delivery's lease.
    assert_problem(&with("timeout_ms", "timeout_ms: 60000"), "triggers.account.timeout_ms: must be 100-15000");
    assert_eq!(problems(&with("timeout_ms", "timeout_ms: 15000")), Vec::<String>::new());
}

#[test]
fn the_longest_status_delivery_fits_the_follow_ups_budget() {
    // A login and a lookup (three attempts and two backoff pauses each), then one PATCH.
    let pauses = READ_BACKOFF.ceiling(1) + READ_BACKOFF.ceiling(2);
    let worst = MAX_TIMEOUT * 7 + pauses * 2;
    assert_eq!(READ_BACKOFF.attempts, 3);
    assert!(worst <= crate::account::provider::DELIVERY_BUDGET, "{worst:?}");
}

#[test]
fn several_problems_are_reported_together() {
    let text = with("api_url", "api_url: ftp://x").replace("  user_name: 105", "  user_name: 101");
    let found = problems(&text);
    assert!(found.len() >= 2, "{found:#?}");
}

#[test]
fn the_schema_documents_every_key() {
    let schema = file::json_schema(&[&crate::account::TRIGGERS]);
    let text = serde_json::to_string(&schema).unwrap();
    for key in ["customer_status", "synchro_console", "custom_sip_table", "status_map", "account_defaults"] {
        assert!(text.contains(key), "{key} missing from the schema");
    }
    // The CRM's names are accepted by editors too, and a required key may use either name.
    let defs = &schema["$defs"];
    assert!(defs["AlianzaConfig"]["properties"]["API_PASSWORD"].is_object(), "{text}");
    assert!(defs["SipTableConfig"]["properties"]["Custom_SIP_Table_userName"].is_object());
    let required = defs["AlianzaConfig"]["required"].as_array().unwrap();
    assert!(!required.iter().any(|r| r == "password"), "{required:?}");
}
