//! Delacon's wire format: the form parameters of each call and the JSON answers, with the
//! vendor's own spellings (`voicemal`, `CallFeedbackSurevy`). Shared by the client and the
//! simulator, and by nothing outside this folder.

use serde::{Deserialize, Deserializer, Serialize};

use crate::provisioning::provider::{CallTrack, CustomerUpdate, Feature, NumberOrder, OrderFor, Region, TransferType};

/// `ErrorInfo.domain` of errors Delacon decided.
pub const DOMAIN: &str = "delacon.com";

/// The request header carrying the API key.
pub const AUTH_HEADER: &str = "Auth";

/// `RESULT` values.
pub const OK: &str = "OK";
pub const FAIL: &str = "FAIL";
pub const WAIT: &str = "WAIT";
pub const INVALID: &str = "INVALID";
pub const LOGIN_FAILED: &str = "LOGIN_FAILED";
/// The callback receiver's answers.
pub const ACCEPTED: &str = "ACCEPTED";

/// The prefix of every INVALID message.
pub const VALIDATION_FAILED: &str = "Data validation failed - ";

/// The region as `/provision` and `/getnumbertypes/{location}` take it.
pub fn region_name(region: Region) -> &'static str {
    region.name()
}

pub fn parse_region(name: &str) -> Option<Region> {
    Region::ALL.into_iter().find(|r| r.name() == name)
}

/// The vendor's locale code of a region, as `getnumbertypes` answers it.
pub fn region_code(region: Region) -> &'static str {
    match region {
        Region::Australia => "en-au",
        Region::China => "zh-cn",
        Region::HongKong => "zh-hk",
        Region::Japan => "ja-jp",
        Region::NewZealand => "en-nz",
        Region::Singapore => "en-sg",
        Region::UnitedKingdom => "en-gb",
        Region::UnitedStates => "en-us",
    }
}

/// A feature in `/provision`'s `features` list (correctly spelled there).
pub fn feature_name(feature: Feature) -> &'static str {
    match feature {
        Feature::CallRecording => "CallRecording",
        Feature::CallFeedbackSurvey => "CallFeedbackSurvey",
    }
}

pub fn parse_feature(name: &str) -> Option<Feature> {
    match name {
        "CallRecording" => Some(Feature::CallRecording),
        "CallFeedbackSurvey" => Some(Feature::CallFeedbackSurvey),
        _ => None,
    }
}

fn yn(v: bool) -> String {
    if v { "Y" } else { "N" }.to_owned()
}

fn xfertype(t: TransferType) -> String {
    match t {
        TransferType::EmailOnly => "1",
        TransferType::TransferOnly => "2",
        TransferType::TransferAndEmail => "3",
    }
    .to_owned()
}

/// `CallTrack` values.
pub const CALL_TRACKS: [&str; 5] = ["GooglePaid", "AllPaidOnly", "All", "Selected", "AllUtmMediumCpc"];

fn call_track(t: CallTrack) -> String {
    match t {
        CallTrack::GooglePaid => CALL_TRACKS[0],
        CallTrack::AllPaidOnly => CALL_TRACKS[1],
        CallTrack::All => CALL_TRACKS[2],
        CallTrack::Selected => CALL_TRACKS[3],
        CallTrack::AllUtmMediumCpc => CALL_TRACKS[4],
    }
    .to_owned()
}

/// The form of a `/provision` request. With `companyID`, Delacon disregards every field before it
/// (the customer's details, features, region and number type), so they are not sent.
pub fn provision_form(order: &NumberOrder) -> Vec<(&'static str, String)> {
    let mut form = Vec::new();
    match &order.who {
        OrderFor::NewCustomer(c) => {
            form.push(("BusinessName", c.business_name.clone()));
            form.push(("BusCat", c.business_category.clone()));
            form.push(("EmailAddress", c.email.clone()));
            form.push(("TerminationNumber", c.termination_number.clone()));
            form.push(("BusID", c.business_id.clone()));
            if !order.features.is_empty() {
                let names: Vec<&str> = order.features.iter().map(|f| feature_name(*f)).collect();
                form.push(("features", names.join(",")));
            }
            if let Some(region) = order.region {
                form.push(("region", region_name(region).to_owned()));
            }
            if let Some(t) = &order.number_type {
                form.push(("numberType", t.clone()));
            }
        }
        OrderFor::Company(id) => form.push(("companyID", id.clone())),
    }
    form.push(("numbers", order.count.to_string()));
    if let Some(email) = &order.order_summary_email {
        form.push(("orderSummaryEmail", email.clone()));
    }
    form.push(("termsCheck", if order.terms_accepted { "on" } else { "off" }.to_owned()));
    form
}

/// Update parameters that Delacon takes only alone, one per request.
pub const INDIVIDUAL_ONLY: [&str; 3] = ["CallRecording", "CallFeedbackSurevy", "IVR"];

/// Every `/updatecustomer` parameter Delacon knows.
pub const UPDATE_PARAMETERS: [&str; 17] = [
    "BusinessName",
    "BusCat",
    "EmailAddress",
    "OneThreeHundredNumber",
    "TerminationNumber",
    "BusID",
    "whisper",
    "DNIS",
    "xfertype",
    "voicemal",
    "xfertime",
    "moh",
    "SMSmessage",
    "CallTrack",
    "CallRecording",
    "CallFeedbackSurevy",
    "IVR",
];

/// One `/updatecustomer` request: the settings it carries (by domain name) and its form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    pub parameters: Vec<&'static str>,
    pub form: Vec<(&'static str, String)>,
}

/// Splits an update into the requests Delacon demands: every ordinary parameter together, then
/// CallRecording, CallFeedbackSurevy and IVR each alone.
pub fn update_requests(u: &CustomerUpdate) -> Vec<UpdateRequest> {
    let text = |v: &Option<String>| v.clone();
    let ordinary: [(&'static str, &'static str, Option<String>); 14] = [
        ("business_name", "BusinessName", text(&u.business_name)),
        ("business_category", "BusCat", text(&u.business_category)),
        ("email", "EmailAddress", text(&u.email)),
        ("one_three_hundred_number", "OneThreeHundredNumber", text(&u.one_three_hundred_number)),
        ("termination_number", "TerminationNumber", text(&u.termination_number)),
        ("business_id", "BusID", text(&u.business_id)),
        ("whisper", "whisper", u.whisper.map(yn)),
        ("dnis", "DNIS", u.dnis.map(yn)),
        ("transfer_type", "xfertype", u.transfer_type.map(xfertype)),
        ("voicemail", "voicemal", u.voicemail.map(yn)),
        ("transfer_time", "xfertime", u.transfer_time.map(|t| t.to_string())),
        ("music_on_hold", "moh", u.music_on_hold.map(yn)),
        ("sms_message", "SMSmessage", text(&u.sms_message)),
        ("call_track", "CallTrack", u.call_track.map(call_track)),
    ];
    let mut requests = Vec::new();
    let mut first = UpdateRequest { parameters: Vec::new(), form: Vec::new() };
    for (name, wire, value) in ordinary {
        if let Some(value) = value {
            first.parameters.push(name);
            first.form.push((wire, value));
        }
    }
    if !first.form.is_empty() {
        requests.push(first);
    }
    let alone = [
        ("call_recording", "CallRecording", u.call_recording),
        ("call_feedback_survey", "CallFeedbackSurevy", u.call_feedback_survey),
        ("ivr", "IVR", u.ivr),
    ];
    for (name, wire, value) in alone {
        if let Some(v) = value {
            requests.push(UpdateRequest { parameters: vec![name], form: vec![(wire, yn(v))] });
        }
    }
    requests
}

/// Delacon's answer to any call: a `RESULT` and whatever goes with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Answer {
    #[serde(rename = "RESULT", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(
        rename = "OrderId",
        alias = "OrderID",
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub order_id: Option<String>,
    #[serde(rename = "CID", default, deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    /// Comma-separated: `"1234, 3456, 5678"`.
    #[serde(rename = "Numbers", default, deserialize_with = "text", skip_serializing_if = "Option::is_none")]
    pub numbers: Option<String>,
    #[serde(rename = "MESSAGE", alias = "Message", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// getnumbertypes: the region's locale code.
    #[serde(rename = "Region", default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(rename = "NumberTypes", default, skip_serializing_if = "Option::is_none")]
    pub number_types: Option<Vec<WireNumberType>>,
}

impl Answer {
    pub fn result(result: &str, message: impl Into<String>) -> Self {
        Self { result: Some(result.to_owned()), message: Some(message.into()), ..Self::default() }
    }

    /// The numbers of an OK answer.
    pub fn number_list(&self) -> Vec<String> {
        self.numbers
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// One entry of `NumberTypes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WireNumberType {
    pub desc: String,
    pub key: String,
}

/// The callback Delacon POSTs when a WAIT order is done.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Callback {
    #[serde(rename = "OrderID")]
    pub order_id: String,
    /// `OK` or `FAIL`.
    #[serde(rename = "Result")]
    pub result: String,
    #[serde(rename = "Message", default)]
    pub message: String,
}

/// Ids come as strings in the documentation, but a JSON number is read too.
fn text<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(serde_json::Number),
    }
    Ok(match Option::<Text>::deserialize(de)? {
        Some(Text::S(s)) => Some(s),
        Some(Text::N(n)) => Some(n.to_string()),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::provider::NewCustomer;

    #[test]
    fn answers_read_the_documented_examples() {
        let ok: Answer =
            serde_json::from_str(r#"{"RESULT":"OK","OrderId":"53","CID":"999","Numbers":"1234, 3456, 5678"}"#).unwrap();
        assert_eq!(ok.result.as_deref(), Some(OK));
        assert_eq!(ok.order_id.as_deref(), Some("53"));
        assert_eq!(ok.company_id.as_deref(), Some("999"));
        assert_eq!(ok.number_list(), ["1234", "3456", "5678"]);
        let numeric: Answer = serde_json::from_str(r#"{"RESULT":"WAIT","OrderId":53,"MESSAGE":"later"}"#).unwrap();
        assert_eq!(numeric.order_id.as_deref(), Some("53"));
        let types: Answer = serde_json::from_str(
            r#"{"Region":"ja-jp","NumberTypes":[{"desc":"0120 Japan Toll Free Number","key":"0120"},{"desc":"03 Tokyo","key":"03"}]}"#,
        )
        .unwrap();
        assert_eq!(types.region.as_deref(), Some("ja-jp"));
        assert_eq!(types.number_types.unwrap()[1].key, "03");
    }

    #[test]
    fn updates_split_the_individual_only_toggles_into_their_own_requests() {
        let update = CustomerUpdate {
            company_id: "1001".into(),
            business_name: Some("Acme".into()),
            voicemail: Some(true),
            call_feedback_survey: Some(true),
            call_recording: Some(false),
            ..CustomerUpdate::default()
        };
        let requests = update_requests(&update);
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].parameters, ["business_name", "voicemail"]);
        assert_eq!(requests[0].form, [("BusinessName", "Acme".to_owned()), ("voicemal", "Y".to_owned())]);
        assert_eq!(requests[1].form, [("CallRecording", "N".to_owned())]);
        assert_eq!(requests[2].form, [("CallFeedbackSurevy", "Y".to_owned())]);
    }

    #[test]
    fn an_order_for_an_existing_company_sends_no_disregarded_fields() {
        let order = NumberOrder {
            who: OrderFor::Company("999".into()),
            features: vec![],
            region: None,
            number_type: None,
            count: 2,
            order_summary_email: None,
            terms_accepted: true,
        };
        let form = provision_form(&order);
        let keys: Vec<&str> = form.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["companyID", "numbers", "termsCheck"]);
        let order = NumberOrder {
            who: OrderFor::NewCustomer(NewCustomer { business_name: "B".into(), ..Default::default() }),
            features: vec![Feature::CallFeedbackSurvey, Feature::CallRecording],
            region: Some(Region::HongKong),
            number_type: Some("800".into()),
            ..order
        };
        let form = provision_form(&order);
        assert!(form.contains(&("features", "CallFeedbackSurvey,CallRecording".to_owned())));
        assert!(form.contains(&("region", "Hong Kong".to_owned())));
    }
}
