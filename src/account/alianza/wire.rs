//! Alianza's JSON, as the client reads and writes it (REST API v2, camelCase).
//!
//! Reading is lenient: a vendor that sends `null`, a number where text was expected, or a field
//! this build does not know never makes a whole answer unreadable. The error bodies come in three
//! shapes; [`VendorMessage::parse`] reads them all and never panics.

use serde::{Deserialize, Deserializer, Serialize, de};

/// The time zones of the spec's `Account.timeZone` (and `EndUserV2X.timeZone`): these 15 only.
pub const TIME_ZONES: &[&str] = &[
    "US/Samoa",
    "US/Hawaii",
    "US/Alaska",
    "US/Pacific",
    "US/Arizona",
    "US/Mountain",
    "US/Central",
    "US/Eastern",
    "America/St_Thomas",
    "Canada/Pacific",
    "Canada/Mountain",
    "Canada/Central",
    "Canada/Eastern",
    "Canada/Atlantic",
    "Canada/Newfoundland",
];

/// `POST /v2/authorize` answer (only what the client uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthAnswer {
    #[serde(deserialize_with = "text")]
    pub auth_token: String,
}

/// `POST /v2/authorize` body.
#[derive(Serialize)]
pub struct AuthRequest<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Account {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub account_number: String,
    #[serde(deserialize_with = "text")]
    pub account_name: String,
    #[serde(deserialize_with = "text")]
    pub account_type: String,
    #[serde(deserialize_with = "text")]
    pub status: String,
    #[serde(deserialize_with = "text")]
    pub platform_type: String,
    #[serde(deserialize_with = "int")]
    pub billing_cycle_day: i64,
    #[serde(deserialize_with = "list")]
    pub calling_plans: Vec<AccountCallingPlan>,
}

/// A calling plan (`CallingPlanX`), of the account (`referenceType` ACCOUNT) or of one of its
/// users (END_USER, in the user's own `callingPlans`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccountCallingPlan {
    #[serde(deserialize_with = "text")]
    pub calling_plan_product_id: String,
    /// A date-time (`2026-01-01T00:00:00Z`), as the spec gives it.
    #[serde(deserialize_with = "text")]
    pub start_date: String,
    #[serde(deserialize_with = "int")]
    pub plan_minutes: i64,
    #[serde(deserialize_with = "int")]
    pub seconds_remaining: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub first_name: String,
    #[serde(deserialize_with = "text")]
    pub last_name: String,
    #[serde(deserialize_with = "text")]
    pub user_product_plan: String,
    pub caller_id_config: Option<CallerIdConfig>,
    /// The user's own calling plans (read-only in `EndUserV2X`).
    #[serde(deserialize_with = "list")]
    pub calling_plans: Vec<AccountCallingPlan>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallerIdConfig {
    #[serde(deserialize_with = "text")]
    pub caller_id_number: String,
}

/// A device line (`DeviceX`): a SIP line, or a key of a device (see [`DeviceLine::is_sip_line`]).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceLine {
    #[serde(deserialize_with = "text")]
    pub device_name: String,
    #[serde(deserialize_with = "text")]
    pub user_id: String,
    #[serde(deserialize_with = "text")]
    pub line_number: String,
    #[serde(deserialize_with = "text")]
    pub sip_username: String,
    #[serde(deserialize_with = "text")]
    pub sip_password: String,
    #[serde(deserialize_with = "text")]
    pub mac_address: String,
    #[serde(deserialize_with = "text")]
    pub emergency_number: String,
    /// `Line`, `SpeedDialUser`, `CallParkingSpot`, ... (empty when the vendor leaves it out).
    #[serde(deserialize_with = "text")]
    pub line_type: String,
}

impl DeviceLine {
    /// Whether this device line is a SIP line of the account (a registration with its own SIP
    /// credentials), as the CRM's SIP table lists them. By `lineType`, after the spec's `DeviceX`:
    /// - `Line` (and a line with no `lineType`, as older data has): yes, the line itself;
    /// - `AdvancedSharedLine`, `SipPaging`: the spec does not say; yes when it has its own
    ///   `sipUsername`;
    /// - `ReferencedUser`, `PresenceBlfUser`, `SpeedDialUser`, `SpeedDialTn`, `CallParkingSpot`,
    ///   `IntercomLine`, `Custom`, and any type this build does not know: no, a key on a device
    ///   that points at a user, a number or a park spot, not a registration.
    pub fn is_sip_line(&self) -> bool {
        match self.line_type.as_str() {
            "" | "Line" => true,
            "AdvancedSharedLine" | "SipPaging" => !self.sip_username.trim().is_empty(),
            _ => false,
        }
    }
}

/// An account's telephone number (`TelephoneNumberAccountV2X`; only what the client uses).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TelephoneNumber {
    #[serde(deserialize_with = "text")]
    pub phone_number: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallingPlanProduct {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub name: String,
}

/// `POST .../account` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount<'a> {
    pub partition_id: &'a str,
    pub account_number: &'a str,
    pub account_name: &'a str,
    pub account_type: &'a str,
    pub billing_cycle_day: u8,
    pub dialing_behavior_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_length: Option<u8>,
    pub time_zone: &'a str,
    pub regulatory_type: &'a str,
    /// Needed only for accounts with toll-free numbers (the spec's description); sent when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_rate_plan_product_id: Option<&'a str>,
    /// `CPE1` or `CPE2`; absent: the partition's PLATFORM_TYPE_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_type: Option<&'a str>,
    pub status: &'a str,
}

/// `PATCH .../account/{id}` body.
#[derive(Debug, Serialize)]
pub struct StatusPatch<'a> {
    pub status: &'a str,
}

/// What an error answer says, whichever of the three shapes it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorMessage {
    /// The vendor's code (`ExpiredAuthToken`); empty for a plain-text body.
    pub code: String,
    /// Readable detail, at most [`MAX_MESSAGE`] characters.
    pub message: String,
}

/// Vendor text copied into errors is cut to this many characters.
pub const MAX_MESSAGE: usize = 200;

impl VendorMessage {
    /// Reads `{"status": 400, "messages": ["A", "B"], "data": {}}`, `{"code": .., "message": ..}`
    /// or plain text. Never fails: an unreadable body becomes its (shortened, printable) text.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Usual {
            messages: Vec<serde_json::Value>,
        }
        #[derive(Deserialize)]
        struct Coded {
            code: serde_json::Value,
            #[serde(default)]
            message: serde_json::Value,
        }
        if let Ok(usual) = serde_json::from_slice::<Usual>(body) {
            let messages: Vec<String> = usual.messages.iter().map(json_text).filter(|m| !m.is_empty()).collect();
            return Self {
                code: messages.first().cloned().unwrap_or_default(),
                message: shorten(&messages.join(", ")),
            };
        }
        if let Ok(coded) = serde_json::from_slice::<Coded>(body) {
            return Self { code: shorten(&json_text(&coded.code)), message: shorten(&json_text(&coded.message)) };
        }
        Self { code: String::new(), message: shorten(&String::from_utf8_lossy(body)) }
    }

    /// Whether any of the codes is `code`.
    pub fn has(&self, code: &str) -> bool {
        self.code == code || self.message.split(", ").any(|m| m == code)
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Printable, single-line, at most [`MAX_MESSAGE`] characters.
fn shorten(text: &str) -> String {
    let clean: String =
        text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_MESSAGE + 1).collect();
    if clean.chars().count() > MAX_MESSAGE {
        let mut cut: String = clean.chars().take(MAX_MESSAGE).collect();
        cut.push('…');
        cut
    } else {
        clean
    }
}

/// Text from a string, number, bool or null. A visitor rather than a detour through
/// `serde_json::Value`: every field of every answer goes through here, on the hot path.
fn text<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    struct Text;
    impl de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("text, a number, a boolean or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    de.deserialize_any(Text)
}

/// An integer from a number, a numeric string or null (0).
fn int<'de, D: Deserializer<'de>>(de: D) -> Result<i64, D::Error> {
    Ok(match serde_json::Value::deserialize(de)? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| de::Error::custom("expected an integer"))?,
        serde_json::Value::String(s) if s.trim().is_empty() => 0,
        serde_json::Value::String(s) => s.trim().parse().map_err(|_| de::Error::custom("expected an integer"))?,
        serde_json::Value::Null => 0,
        _ => return Err(de::Error::custom("expected an integer")),
    })
}

/// A list, or null (empty).
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(de)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_error_shape_is_read() {
        let m = VendorMessage::parse(br#"{"status": 401, "messages": ["ExpiredAuthToken"], "data": {}}"#);
        assert_eq!(m, VendorMessage { code: "ExpiredAuthToken".into(), message: "ExpiredAuthToken".into() });
        let m = VendorMessage::parse(br#"{"status": 400, "messages": ["InvalidTimeZone", "InvalidBillingCycleDay"]}"#);
        assert_eq!(m.code, "InvalidTimeZone");
        assert!(m.has("InvalidBillingCycleDay"));
    }

    #[test]
    fn the_code_and_message_shape_is_read_with_numeric_codes_too() {
        let m = VendorMessage::parse(br#"{"code": "AccountHasTelephoneNumbers", "message": "release them"}"#);
        assert_eq!((m.code.as_str(), m.message.as_str()), ("AccountHasTelephoneNumbers", "release them"));
        assert_eq!(VendorMessage::parse(br#"{"code": 1042}"#).code, "1042");
    }

    #[test]
    fn plain_text_and_garbage_never_panic_and_are_shortened() {
        assert_eq!(VendorMessage::parse(b"Bad Request").message, "Bad Request");
        let long = vec![b'x'; 5000];
        assert_eq!(VendorMessage::parse(&long).message.chars().count(), MAX_MESSAGE + 1);
        let m = VendorMessage::parse(b"\x01<<garbage>>{\"unterminated\xff");
        assert!(!m.message.chars().any(char::is_control));
        assert_eq!(VendorMessage::parse(b"").code, "");
    }

    #[test]
    fn accounts_tolerate_nulls_numbers_as_text_and_unknown_fields() {
        let a: Account = serde_json::from_str(
            r#"{"id": 42, "accountNumber": "1001", "accountName": null, "billingCycleDay": "15",
                "callingPlans": null, "somethingNew": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!((a.id.as_str(), a.account_name.as_str(), a.billing_cycle_day), ("42", "", 15));
        assert!(a.calling_plans.is_empty());
        let line: DeviceLine = serde_json::from_str(r#"{"lineNumber": 2, "sipUsername": "u"}"#).unwrap();
        assert_eq!(line.line_number, "2");
    }
}
