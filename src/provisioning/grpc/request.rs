//! The request rules of ProvisioningService: every field of a request checked (each problem
//! named in one answer), and the request turned into domain types.

use tonic::Code;

use crate::{
    ops::{
        ApiError, Violations,
        mask::{self, Updatable},
    },
    proto::v1::{self as pb, provision_numbers_request::Who},
    provisioning::provider::{
        CallTrack, CustomerUpdate, Feature, NewCustomer, NumberOrder, OrderFor, Region, TransferType,
    },
};

pub(super) const MAX_TEXT: usize = 255;

/// A plausible email address: one `@`, something before it, a dotted domain after, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A phone number: 6-15 digits, optionally a leading `+`, spaces allowed between digits.
pub(super) fn valid_phone(number: &str) -> bool {
    let body = number.trim().strip_prefix('+').unwrap_or(number.trim());
    let digits = body.chars().filter(char::is_ascii_digit).count();
    body.chars().all(|c| c.is_ascii_digit() || c == ' ') && (6..=15).contains(&digits)
}

/// The vendor's company id: 1-18 digits.
pub(super) fn valid_company_id(id: &str) -> bool {
    (1..=18).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

pub(super) const COMPANY_ID_RULE: &str = "the vendor's company id (CID): 1-18 digits";
pub(super) const EMAIL_RULE: &str = "must be an email address such as ops@example.com";
pub(super) const PHONE_RULE: &str = "must be a phone number: 6-15 digits, optionally with a leading + and spaces";

pub(super) fn check_text(v: &mut Violations, field: &str, value: &str, required: bool, max: usize) {
    if value.trim().is_empty() {
        if required {
            v.add(field, "required");
        }
    } else if value.chars().count() > max {
        v.add(field, format!("at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
}

pub(super) fn region_of(value: i32) -> Result<Option<Region>, ()> {
    match pb::Region::try_from(value) {
        Ok(pb::Region::Unspecified) => Ok(None),
        Ok(pb::Region::Australia) => Ok(Some(Region::Australia)),
        Ok(pb::Region::China) => Ok(Some(Region::China)),
        Ok(pb::Region::HongKong) => Ok(Some(Region::HongKong)),
        Ok(pb::Region::Japan) => Ok(Some(Region::Japan)),
        Ok(pb::Region::NewZealand) => Ok(Some(Region::NewZealand)),
        Ok(pb::Region::Singapore) => Ok(Some(Region::Singapore)),
        Ok(pb::Region::UnitedKingdom) => Ok(Some(Region::UnitedKingdom)),
        Ok(pb::Region::UnitedStates) => Ok(Some(Region::UnitedStates)),
        Err(_) => Err(()),
    }
}

pub(super) const REGION_RULE: &str = "required: one of REGION_AUSTRALIA, REGION_CHINA, REGION_HONG_KONG, REGION_JAPAN, \
                           REGION_NEW_ZEALAND, REGION_SINGAPORE, REGION_UNITED_KINGDOM, REGION_UNITED_STATES";

/// The order a request describes, with every pure rule checked; the number type is checked
/// against the region's list afterwards.
pub(super) fn check_provision(req: &pb::ProvisionNumbersRequest, v: &mut Violations) -> Option<NumberOrder> {
    if req.request_id.trim().is_empty() {
        v.add("request_id", "required: ordering numbers is only safe to retry with an idempotency key (a UUID)");
    }
    let who = match &req.who {
        None => {
            v.add("who", "required: new_customer, or company_id of an existing customer");
            None
        }
        Some(Who::CompanyId(id)) => {
            if !valid_company_id(id) {
                v.add("company_id", COMPANY_ID_RULE);
            }
            // The vendor disregards these for an existing company: its numbers come in the
            // company's own region and type, with its own features. Refuse rather than ignore.
            let why = "must be unset with company_id: the vendor orders an existing company's numbers in its \
                       own region, number type and features";
            v.check(req.features.is_empty(), "features", why);
            v.check(req.region == 0, "region", why);
            v.check(req.number_type.is_empty(), "number_type", why);
            Some(OrderFor::Company(id.clone()))
        }
        Some(Who::NewCustomer(c)) => {
            check_text(v, "new_customer.business_name", &c.business_name, true, MAX_TEXT);
            check_text(v, "new_customer.business_category", &c.business_category, false, MAX_TEXT);
            if c.email.trim().is_empty() {
                v.add("new_customer.email", format!("required; {EMAIL_RULE}"));
            } else if !valid_email(&c.email) {
                v.add("new_customer.email", EMAIL_RULE);
            }
            if !c.termination_number.is_empty() && !valid_phone(&c.termination_number) {
                v.add("new_customer.termination_number", PHONE_RULE);
            }
            check_text(v, "new_customer.business_id", &c.business_id, false, 64);
            Some(OrderFor::NewCustomer(NewCustomer {
                business_name: c.business_name.trim().to_owned(),
                business_category: c.business_category.trim().to_owned(),
                email: c.email.trim().to_owned(),
                termination_number: c.termination_number.trim().to_owned(),
                business_id: c.business_id.trim().to_owned(),
            }))
        }
    };
    let new_customer = matches!(who, Some(OrderFor::NewCustomer(_)));
    let mut features = Vec::new();
    if new_customer {
        for (i, f) in req.features.iter().enumerate() {
            let feature = match pb::Feature::try_from(*f) {
                Ok(pb::Feature::CallRecording) => Feature::CallRecording,
                Ok(pb::Feature::CallFeedbackSurvey) => Feature::CallFeedbackSurvey,
                _ => {
                    v.add(format!("features[{i}]"), "must be FEATURE_CALL_RECORDING or FEATURE_CALL_FEEDBACK_SURVEY");
                    continue;
                }
            };
            if features.contains(&feature) {
                v.add(format!("features[{i}]"), "listed twice");
            } else {
                features.push(feature);
            }
        }
    }
    let region = if new_customer {
        match region_of(req.region) {
            Ok(Some(r)) => Some(r),
            _ => {
                v.add("region", REGION_RULE);
                None
            }
        }
    } else {
        None
    };
    if new_customer && req.number_type.trim().is_empty() {
        v.add("number_type", "required: a key GetRegionNumberTypes lists for the region");
    }
    let count = u8::try_from(req.count).ok().filter(|c| (1..=10).contains(c));
    if count.is_none() {
        v.add("count", "must be 1-10 (numbers in one order)");
    }
    if !req.order_summary_email.is_empty() && !valid_email(&req.order_summary_email) {
        v.add("order_summary_email", EMAIL_RULE);
    }
    v.check(req.terms_accepted, "terms_accepted", "must be true: the vendor's terms must be accepted to order");
    Some(NumberOrder {
        who: who?,
        features,
        region,
        number_type: new_customer.then(|| req.number_type.trim().to_owned()),
        count: count?,
        order_summary_email: Some(req.order_summary_email.trim().to_owned()).filter(|e| !e.is_empty()),
        terms_accepted: req.terms_accepted,
    })
}

/// The customer fields of UpdateCustomerRequest, by name: whether one has a value, unsetting it.
macro_rules! customer_fields {
    ($($name:ident: $kind:ident),* $(,)?) => {
        const CUSTOMER_FIELDS: &[&str] = &[$(stringify!($name)),*];

        fn has_value(req: &pb::UpdateCustomerRequest, field: &str) -> bool {
            match field {
                $(stringify!($name) => customer_fields!(@has $kind req.$name),)*
                _ => false,
            }
        }

        fn unset(req: &mut pb::UpdateCustomerRequest, field: &str) {
            match field {
                $(stringify!($name) => req.$name = Default::default(),)*
                _ => {}
            }
        }
    };
    (@has text $v:expr) => { $v.as_deref().is_some_and(|s| !s.trim().is_empty()) };
    (@has flag $v:expr) => { $v.is_some() };
    (@has choice $v:expr) => { $v != 0 };
}

customer_fields! {
    business_name: text, business_category: text, email: text, one_three_hundred_number: text,
    termination_number: text, business_id: text, whisper: flag, dnis: flag, transfer_type: choice,
    voicemail: flag, transfer_time: flag, music_on_hold: flag, sms_message: text, call_track: choice,
    call_recording: flag, call_feedback_survey: flag, ivr: flag,
}

/// What UpdateCustomer's mask may name: the request's own customer fields.
const CUSTOMER_UPDATE: Updatable<'static> = Updatable {
    fields: CUSTOMER_FIELDS,
    fixed: &[
        ("tenant", "it names the tenant"),
        ("company_id", "it names the customer to update"),
        ("request_id", "it is the call's idempotency key"),
        ("update_mask", "it is the mask itself"),
    ],
    resource: None,
};

/// The request as its update_mask has it: only the named fields, and each of them with a
/// value, since Delacon has no way to clear one. Without a mask, the request as it is.
fn masked(req: &pb::UpdateCustomerRequest) -> Result<pb::UpdateCustomerRequest, ApiError> {
    let mut v = Violations::new();
    let Some(named) = mask::named(req.update_mask.as_ref(), &CUSTOMER_UPDATE, &mut v) else {
        return Ok(req.clone());
    };
    let mut out = pb::UpdateCustomerRequest { update_mask: None, ..req.clone() };
    for field in CUSTOMER_FIELDS {
        if !named.contains(field) {
            unset(&mut out, field);
        } else if !has_value(req, field) {
            v.add(
                *field,
                "is in update_mask without a value: Delacon's API has no way to clear a field; give the value to \
                 set, or leave the field out of the mask to keep it",
            );
        }
    }
    v.into_result()?;
    Ok(out)
}

pub(super) fn check_update(req: &pb::UpdateCustomerRequest) -> Result<CustomerUpdate, ApiError> {
    let req = &masked(req)?;
    let mut v = Violations::new();
    if req.company_id.is_empty() {
        v.add("company_id", format!("required: {COMPANY_ID_RULE}"));
    } else if !valid_company_id(&req.company_id) {
        v.add("company_id", COMPANY_ID_RULE);
    }
    let unset_hint = "must not be empty when set (leave it unset to keep the current value)";
    let mut text = |field: &str, value: &Option<String>, max: usize| {
        if let Some(value) = value {
            if value.trim().is_empty() {
                v.add(field, unset_hint);
            } else {
                check_text(&mut v, field, value, false, max);
            }
        }
    };
    text("business_name", &req.business_name, MAX_TEXT);
    text("business_category", &req.business_category, MAX_TEXT);
    text("business_id", &req.business_id, 64);
    text("email", &req.email, 254);
    if let Some(email) = req.email.as_deref().filter(|e| !e.trim().is_empty())
        && !valid_email(email)
    {
        v.add("email", EMAIL_RULE);
    }
    for (field, value) in
        [("one_three_hundred_number", &req.one_three_hundred_number), ("termination_number", &req.termination_number)]
    {
        if let Some(n) = value
            && !valid_phone(n)
        {
            v.add(field, PHONE_RULE);
        }
    }
    let transfer_type = match pb::TransferType::try_from(req.transfer_type) {
        Ok(pb::TransferType::Unspecified) => None,
        Ok(pb::TransferType::EmailOnly) => Some(TransferType::EmailOnly),
        Ok(pb::TransferType::TransferOnly) => Some(TransferType::TransferOnly),
        Ok(pb::TransferType::TransferAndEmail) => Some(TransferType::TransferAndEmail),
        Err(_) => {
            v.add(
                "transfer_type",
                "must be TRANSFER_TYPE_EMAIL_ONLY, TRANSFER_TYPE_TRANSFER_ONLY or TRANSFER_TYPE_TRANSFER_AND_EMAIL",
            );
            None
        }
    };
    let transfer_time = match req.transfer_time {
        None => None,
        Some(t) => match u16::try_from(t).ok().filter(|t| *t <= 999) {
            Some(t) => Some(t),
            None => {
                v.add("transfer_time", "must be 0-999 seconds (at most 3 digits)");
                None
            }
        },
    };
    if let Some(sms) = &req.sms_message {
        if sms.trim().is_empty() {
            v.add("sms_message", unset_hint);
        } else if sms.chars().count() > 160 {
            v.add("sms_message", format!("at most 160 characters (this one has {})", sms.chars().count()));
        }
    }
    let call_track = match pb::CallTrack::try_from(req.call_track) {
        Ok(pb::CallTrack::Unspecified) => None,
        Ok(pb::CallTrack::GooglePaid) => Some(CallTrack::GooglePaid),
        Ok(pb::CallTrack::AllPaidOnly) => Some(CallTrack::AllPaidOnly),
        Ok(pb::CallTrack::All) => Some(CallTrack::All),
        Ok(pb::CallTrack::Selected) => Some(CallTrack::Selected),
        Ok(pb::CallTrack::AllUtmMediumCpc) => Some(CallTrack::AllUtmMediumCpc),
        Err(_) => {
            v.add(
                "call_track",
                "must be CALL_TRACK_GOOGLE_PAID, CALL_TRACK_ALL_PAID_ONLY, CALL_TRACK_ALL, CALL_TRACK_SELECTED or \
                 CALL_TRACK_ALL_UTM_MEDIUM_CPC",
            );
            None
        }
    };
    v.into_result()?;
    let trimmed = |s: &Option<String>| s.as_ref().map(|s| s.trim().to_owned());
    let update = CustomerUpdate {
        company_id: req.company_id.clone(),
        business_name: trimmed(&req.business_name),
        business_category: trimmed(&req.business_category),
        email: trimmed(&req.email),
        one_three_hundred_number: trimmed(&req.one_three_hundred_number),
        termination_number: trimmed(&req.termination_number),
        business_id: trimmed(&req.business_id),
        whisper: req.whisper,
        dnis: req.dnis,
        transfer_type,
        voicemail: req.voicemail,
        transfer_time,
        music_on_hold: req.music_on_hold,
        sms_message: req.sms_message.clone(),
        call_track,
        call_recording: req.call_recording,
        call_feedback_survey: req.call_feedback_survey,
        ivr: req.ivr,
    };
    if update.changed().is_empty() {
        return Err(ApiError::new(
            Code::InvalidArgument,
            "NOTHING_TO_UPDATE",
            "nothing to update: set at least one field besides company_id",
        ));
    }
    Ok(update)
}

pub(super) fn check_order_id(order_id: &str) -> Result<(), ApiError> {
    if order_id.trim().is_empty() || order_id.len() > 64 {
        return Err(ApiError::invalid_field("order_id", "required: the vendor's order id (at most 64 characters)"));
    }
    if order_id.chars().any(char::is_control) {
        return Err(ApiError::invalid_field("order_id", "must not contain control characters (NUL, newlines, ...)"));
    }
    Ok(())
}
