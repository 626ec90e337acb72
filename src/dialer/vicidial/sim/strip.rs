//! The characters `non_agent_api.php` silently strips from each parameter before any check
//! (non-Latin mode off, the default: "letters" are ASCII letters only). A stripped value is what
//! the dialer compares, stores and echoes; the caller is never told that anything vanished.
//!
//! PHP's byte-wise `preg_replace` drops every byte of a multi-byte character outside the kept
//! set, which is the same as dropping the whole character, as done here.

/// A parameter as the dialer sees it: `raw` stripped by the table for `name`. Parameters the
/// simulator does not read keep their raw value.
pub fn field(name: &str, raw: &str) -> String {
    match name {
        "user" | "pass" | "agent_user" | "agent_pass" | "phone_pass" | "agent_user_group" | "phone_login"
        | "campaign_id" | "status" | "script" | "am_message" | "drop_inbound_group" | "local_call_time"
        | "expiration_date" | "list_id" | "duplicate_check" | "search_method" | "tz_method" | "stage" | "function"
        | "middle_initial" | "country_code" | "leads_counts" | "user_field" => keep(raw, "-_"),
        "xferconf_one" | "xferconf_two" | "xferconf_three" | "xferconf_four" | "xferconf_five" => keep(raw, "-_"),
        "source" | "voicemail_id" | "list_exists_check" | "header" => keep(raw, ""),
        "dialable_count" => keep(raw, "_"),
        "phone_number" => raw.chars().filter(|c| c.is_ascii_digit() || *c == ',').collect(),
        "lead_id" | "list_id_field" | "phone_code" | "rank" | "called_count" | "entry_list_id" | "agent_user_level"
        | "hotkeys_active" | "records" | "custom_fields_copy" => digits(raw),
        "active"
        | "delete_user"
        | "delete_list"
        | "delete_leads"
        | "no_update"
        | "delete_lead"
        | "insert_if_not_found"
        | "dnc_check"
        | "campaign_dnc_check"
        | "add_to_hopper"
        | "search_location"
        | "gender"
        | "callback"
        | "usacan_prefix_check"
        | "reset_list" => raw.chars().filter(char::is_ascii_uppercase).collect(),
        "agent_full_name" | "custom_one" | "custom_two" | "custom_three" | "custom_four" | "custom_five" => {
            keep(raw, "- +.:/@_")
        }
        "list_name" | "list_description" => keep(raw, "- +.:/@?&_"),
        "first_name" | "last_name" | "alt_phone" | "province" => plus_to_space(keep(raw, "- '+_.")),
        "address1" | "address2" | "address3" | "city" | "security_phrase" | "owner" => {
            plus_to_space(keep(raw, "- '+.:/@_"))
        }
        "email" => plus_to_space(keep(raw, "- '+.:/@%_")),
        "title" => keep(raw, "- '_."),
        "state" => keep(raw, "- "),
        "postal_code" => plus_to_space(keep(raw, "- '+")),
        "vendor_lead_code" | "source_id" | "comments" => plus_to_space(raw.replace([';', '#', '"'], "")),
        "server_ip" => keep(raw, "-.:_"),
        "wrapup_seconds_override" => keep_digits_and(raw, "-"),
        "reset_time" => keep_digits_and(raw, "-_"),
        "date_of_birth" => keep_digits_and(raw, "-"),
        "gmt_offset_now" => keep_digits_and(raw, "-_."),
        _ => raw.to_owned(),
    }
}

/// ASCII letters, digits and the `extra` characters.
fn keep(raw: &str, extra: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_alphanumeric() || extra.contains(*c)).collect()
}

fn keep_digits_and(raw: &str, extra: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_digit() || extra.contains(*c)).collect()
}

/// Digits only: what add_list and add_lead keep of a list id after the common strip.
pub fn digits(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

/// Several fields keep `+` through the strip and then turn it into a space, so even a `%2B`
/// sent on purpose ends up a space.
fn plus_to_space(s: String) -> String {
    if s.contains('+') { s.replace('+', " ") } else { s }
}

/// The first `width` characters: MySQL (strict mode off, as VICIdial installs it) cuts a value
/// to its column silently.
pub fn cut(value: &str, width: usize) -> String {
    value.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_fields_keep_dashes_underscores_letters_and_digits() {
        assert_eq!(field("pass", "p@ss!"), "pss");
        assert_eq!(field("user", "api-user_1 é"), "api-user_1");
        assert_eq!(field("campaign_id", "TEST CAMP"), "TESTCAMP");
    }

    #[test]
    fn source_and_voicemail_keep_letters_and_digits_only() {
        assert_eq!(field("source", "x-1"), "x1");
        assert_eq!(field("voicemail_id", "--BLANK--"), "BLANK");
    }

    #[test]
    fn phone_numbers_keep_digits_and_commas() {
        assert_eq!(field("phone_number", "(727) 555-1212"), "7275551212");
        assert_eq!(field("phone_number", "727,555"), "727,555");
    }

    #[test]
    fn flags_keep_upper_case_letters_only() {
        assert_eq!(field("active", "y"), "");
        assert_eq!(field("active", "yes"), "");
        assert_eq!(field("active", "Yes"), "Y");
        assert_eq!(field("delete_user", "YES"), "YES");
    }

    #[test]
    fn names_lose_punctuation_and_plus_becomes_a_space() {
        assert_eq!(field("agent_full_name", "O'Brien, Jr."), "OBrien Jr.");
        assert_eq!(field("first_name", "Mary+Ann O'Neil!"), "Mary Ann O'Neil");
        assert_eq!(field("list_name", "CRM export? & more!"), "CRM export? & more");
    }

    #[test]
    fn email_keeps_its_characters_but_plus_becomes_a_space() {
        assert_eq!(field("email", "a+b@x.com"), "a b@x.com");
        assert_eq!(field("email", "a%b@x.com;"), "a%b@x.com");
    }

    #[test]
    fn city_and_postal_code_follow_their_own_sets() {
        assert_eq!(field("city", "St. Louis/MO #1"), "St. Louis/MO 1");
        assert_eq!(field("postal_code", "AB1+2CD.!"), "AB1 2CD");
    }

    #[test]
    fn vendor_lead_code_loses_only_semicolons_hashes_and_quotes() {
        assert_eq!(field("vendor_lead_code", "crm;#\"42+x/é"), "crm42 x/é");
    }

    #[test]
    fn digit_fields_and_unknown_fields() {
        assert_eq!(field("phone_code", "+44"), "44");
        assert_eq!(digits("12ab-3"), "123");
        assert_eq!(field("something_else", "a b;c"), "a b;c");
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("ééé", 2), "éé");
        assert_eq!(cut("ab", 5), "ab");
    }
}
