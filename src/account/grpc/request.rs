//! The request rules of AccountService: every field checked (each problem named in one
//! answer), and the request turned into domain types.

use crate::{
    account::{
        provider::{AccountType, DialingBehavior, NewAccount},
        settings::{AccountNumberField, AccountSettings},
        sip_sync::SyncMode,
    },
    ops::{ApiError, Violations},
    proto::v1 as pb,
};

/// The longest account number and account name Alianza takes (its spec: 3-256 characters each).
const MAX_TEXT: usize = 256;

/// The customer's account number, by the tenant's `account_number_field`; a violation if it is
/// missing or breaks Alianza's rule (3-256 characters; here also printable, no outer blanks).
pub(crate) fn account_number(
    customer: Option<&pb::Customer>,
    field: &AccountNumberField,
    v: &mut Violations,
) -> String {
    let Some(customer) = customer else {
        v.add("customer", "required: the CRM customer");
        return String::new();
    };
    let value = match field {
        AccountNumberField::Nickname => customer.nickname.as_str(),
        AccountNumberField::Field(name) => customer.fields.get(name).map_or("", String::as_str),
    };
    let path = field.field_path();
    let len = value.chars().count();
    if value.is_empty() {
        v.add(path, "required: the customer's account number at the vendor (the tenant's account_number_field)");
    } else if !(3..=MAX_TEXT).contains(&len) {
        v.add(path, format!("an account number is 3-{MAX_TEXT} characters; this one has {len}"));
    } else if value.chars().any(char::is_control) || value.trim() != value {
        v.add(path, "an account number has no control characters and no leading or trailing blanks");
    }
    value.to_owned()
}

pub(super) fn dialing_from_pb(d: pb::DialingBehavior) -> Option<DialingBehavior> {
    Some(match d {
        pb::DialingBehavior::Unspecified => return None,
        pb::DialingBehavior::SevenDigit => DialingBehavior::SevenDigit,
        pb::DialingBehavior::TenDigit => DialingBehavior::TenDigit,
        pb::DialingBehavior::OpenDialPlan => DialingBehavior::OpenDialPlan,
        pb::DialingBehavior::DialNineSevenDigit => DialingBehavior::DialNineSevenDigit,
        pb::DialingBehavior::DialNineTenDigit => DialingBehavior::DialNineTenDigit,
        pb::DialingBehavior::OpenDialPlanTenDigit => DialingBehavior::OpenDialPlanTenDigit,
    })
}

/// Validates a CreateAccountRequest completely, before any vendor call.
pub(super) fn new_account(req: &pb::CreateAccountRequest, settings: &AccountSettings) -> Result<NewAccount, ApiError> {
    let mut v = Violations::new();
    let number = account_number(req.customer.as_ref(), &settings.account_number_field, &mut v);
    let customer = req.customer.clone().unwrap_or_default();
    let name = customer.name.trim();
    let name_len = name.chars().count();
    if req.customer.is_some() && name.is_empty() {
        v.add("customer.name", "required: it becomes the account name at the vendor");
    } else if req.customer.is_some() && !(3..=MAX_TEXT).contains(&name_len) {
        v.add(
            "customer.name",
            format!("an account name is 3-{MAX_TEXT} characters (Alianza's rule); this one has {name_len}"),
        );
    }
    if req.customer.is_some() && customer.status.trim().is_empty() {
        v.add("customer.status", "required: the CRM status (e.g. `current`) gives the account's initial status");
    }
    let account_type = match pb::AccountType::try_from(req.account_type) {
        Ok(pb::AccountType::Simple) => Some(AccountType::Simple),
        Ok(pb::AccountType::Advanced) => Some(AccountType::Advanced),
        Ok(pb::AccountType::Unspecified) => {
            v.add("account_type", "required: ACCOUNT_TYPE_SIMPLE or ACCOUNT_TYPE_ADVANCED");
            None
        }
        Err(_) => {
            v.add("account_type", format!("unknown value {}", req.account_type));
            None
        }
    };
    let billing_cycle_day = match (req.billing_cycle_day, settings.default_billing_cycle_day) {
        (0, Some(day)) => Some(day),
        (0, None) => {
            v.add("billing_cycle_day", "required (1-28): the tenant's account_defaults name no billing_cycle_day");
            None
        }
        (day @ 1..=28, _) => Some(day as u8),
        (day, _) => {
            v.add("billing_cycle_day", format!("must be 1-28; got {day}"));
            None
        }
    };
    let (dialing, from_default) = match pb::DialingBehavior::try_from(req.dialing_behavior).map(dialing_from_pb) {
        Ok(Some(d)) => (Some(d), false),
        Ok(None) => match settings.default_dialing_behavior {
            Some(d) => (Some(d), true),
            None => {
                v.add("dialing_behavior", "required: the tenant's account_defaults name no dialing_behavior");
                (None, false)
            }
        },
        Err(_) => {
            v.add("dialing_behavior", format!("unknown value {}", req.dialing_behavior));
            (None, false)
        }
    };
    let dial_nine = dialing.is_some_and(DialingBehavior::is_dial_nine);
    match account_type {
        Some(AccountType::Simple) => {
            if dial_nine {
                let d = dialing.map(DialingBehavior::as_str).unwrap_or_default();
                let whose = if from_default { format!("the tenant's default {d}") } else { d.to_owned() };
                v.add(
                    "dialing_behavior",
                    format!("{whose} is for ADVANCED accounts only (dial 9, extensions); a SIMPLE account has neither"),
                );
            }
            if req.extension_length != 0 {
                v.add("extension_length", "must be 0 for a SIMPLE account: it has no extension dialling");
            }
        }
        Some(AccountType::Advanced) if req.extension_length == 0 && dial_nine => {
            v.add(
                "extension_length",
                "required (3-6) for an ADVANCED account with a DIAL_NINE behaviour (extension-to-extension dialling)",
            );
        }
        Some(AccountType::Advanced) | None => {}
    }
    let simple = account_type == Some(AccountType::Simple);
    if !simple && req.extension_length != 0 && !(3..=6).contains(&req.extension_length) {
        v.add("extension_length", format!("must be 3-6; got {}", req.extension_length));
    }
    v.into_result()?;
    Ok(NewAccount {
        number,
        name: name.to_owned(),
        account_type: account_type.expect("validated"),
        billing_cycle_day: billing_cycle_day.expect("validated"),
        dialing_behavior: dialing.expect("validated"),
        extension_length: (req.extension_length != 0).then_some(req.extension_length as u8),
        status: settings.status_map.map(&customer.status),
    })
}

pub(super) fn sync_mode(mode: i32, v: &mut Violations) -> SyncMode {
    match pb::SyncMode::try_from(mode) {
        Ok(pb::SyncMode::Unspecified | pb::SyncMode::Full) => SyncMode::Full,
        Ok(pb::SyncMode::AddOnly) => SyncMode::AddOnly,
        Err(_) => {
            v.add("mode", format!("unknown value {mode}: SYNC_MODE_FULL or SYNC_MODE_ADD_ONLY"));
            SyncMode::Full
        }
    }
}
