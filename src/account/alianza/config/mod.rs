//! The `triggers.account` section of a tenant whose account provider is Alianza: its keys (the
//! operators' manual, and `patchbay schema`), their pure validation, and the build of the client.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use secrecy::SecretString;
use serde::Deserialize;

use super::{
    client::{AlianzaClient, ClientConfig, CreateDefaults, READ_BACKOFF},
    wire::TIME_ZONES,
};
use crate::{
    account::{
        provider::{DesiredStatus, DialingBehavior},
        settings::{
            AccountNumberField, AccountSettings, FLAT_SIP_TABLE_KEYS, SipTableConfig, StatusMap, flat_sip_table,
        },
        trigger::AccountTrigger,
    },
    registry::{
        provider::{BuildDeps, BuildTrigger, ValidateCtx, key_as_written, simulator_allowed},
        secrets::SecretRef,
        yaml::Value,
    },
};

/// Per-request timeout when the tenant sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `timeout_ms`. A status delivery makes at most seven requests in a row (a login and
/// the account lookup, three attempts each, then the PATCH); at this timeout they still fit the
/// status follow-up's delivery budget, so a delivery never outlives its lease.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(15);

/// `triggers.account` with `provider: alianza`: a tenant's Alianza Cloud Voice account, as the
/// CRM's "External API (triggers)" page configures it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "account trigger: alianza", transform = config_aliases)]
pub struct AlianzaConfig {
    /// `alianza`.
    #[schemars(extend("const" = "alianza"))]
    pub provider: String,
    /// `false` switches the whole trigger off: every AccountService call is FAILED_PRECONDITION,
    /// reason TRIGGER_DISABLED. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The CRM's "Customer Status" switch: enables GetAccountStatus (the status panel) and the
    /// automatic status follow-up (SetCustomerStatus). Default false.
    #[serde(default)]
    pub customer_status: bool,
    /// The CRM's "Customer Synchro Console" switch: enables CreateAccount, SyncSipLines,
    /// ListSipLines and DeleteAccount. When true, `account_defaults` (time_zone and
    /// regulatory_type) and the SIP table's field IDs are required. Default false.
    #[serde(default)]
    pub synchro_console: bool,
    /// Alianza's API: `https://api.alianza.com` (production), `https://api.b2.alianza.com`
    /// (beta), or `simulator` for patchbay's built-in simulator (seeded with demo accounts).
    pub api_url: String,
    /// The Alianza admin portal, shown on the status panel for the "Open in Alianza GUI" button.
    #[serde(default)]
    pub admin_portal_url: Option<String>,
    /// Your partition id at Alianza (from your client services manager).
    pub partition_id: String,
    /// The Alianza admin-portal user patchbay logs in as. CRM name: `API_USERNAME`.
    #[serde(alias = "API_USERNAME")]
    pub username: SecretRef,
    /// Its password. CRM name: `API_PASSWORD`. Keep it out of the file: `${env:..}` or `${file:..}`.
    #[serde(alias = "API_PASSWORD")]
    pub password: SecretRef,
    /// The CRM customer field holding the Alianza account number: `nickname` (the default, also
    /// when left blank) or the name of a custom field, looked up in `customer.fields`.
    /// CRM name: `Account_Number_Field`.
    #[serde(default, alias = "Account_Number_Field")]
    pub account_number_field: Option<String>,
    /// CRM status -> Alianza status (ACTIVE or DISABLED). Statuses not listed are DISABLED;
    /// matched without regard to case. Default `{ current: ACTIVE }`.
    #[serde(default)]
    pub status_map: Option<BTreeMap<String, DesiredStatus>>,
    /// What Alianza requires on account creation that the CRM does not know.
    #[serde(default)]
    pub account_defaults: Option<AccountDefaults>,
    /// The field IDs of the CRM's custom "Alianza Voice" table that SyncSipLines fills. The CRM's
    /// trigger page lists them flat instead: the five `Custom_SIP_Table_*` keys below may stand
    /// directly under `triggers.account` (all five), but not as well as this key.
    #[serde(default)]
    pub custom_sip_table: Option<SipTableConfig>,
    /// Flat form of `custom_sip_table.dial_number`, as the CRM's trigger page lists it.
    #[serde(default, rename = "Custom_SIP_Table_dialNumber")]
    pub flat_dial_number: Option<u32>,
    /// Flat form of `custom_sip_table.display_name`, as the CRM's trigger page lists it.
    #[serde(default, rename = "Custom_SIP_Table_displayName")]
    pub flat_display_name: Option<u32>,
    /// Flat form of `custom_sip_table.password` (a field ID, not a secret), as the CRM's
    /// trigger page lists it.
    #[serde(default, rename = "Custom_SIP_Table_password")]
    pub flat_password: Option<u32>,
    /// Flat form of `custom_sip_table.port_number`, as the CRM's trigger page lists it.
    #[serde(default, rename = "Custom_SIP_Table_portNumber")]
    pub flat_port_number: Option<u32>,
    /// Flat form of `custom_sip_table.user_name`, as the CRM's trigger page lists it.
    #[serde(default, rename = "Custom_SIP_Table_userName")]
    pub flat_user_name: Option<u32>,
    /// Milliseconds before an Alianza request is given up (100-15000). Default 10000. A status
    /// delivery makes up to seven requests in a row, and must finish within the status follow-up's
    /// budget (110 s), hence the upper bound.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn config_aliases(schema: &mut Schema) {
    crate::account::settings::schema_aliases(
        schema,
        &[("username", "API_USERNAME"), ("password", "API_PASSWORD"), ("account_number_field", "Account_Number_Field")],
    );
}

fn yes() -> bool {
    true
}

/// Account-creation settings the CRM cannot supply.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountDefaults {
    /// The new account's time zone: one of Alianza's 15 (US/Samoa, US/Hawaii, US/Alaska,
    /// US/Pacific, US/Arizona, US/Mountain, US/Central, US/Eastern, America/St_Thomas,
    /// Canada/Pacific, Canada/Mountain, Canada/Central, Canada/Eastern, Canada/Atlantic,
    /// Canada/Newfoundland). `America/New_York` is not among them.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// RESIDENTIAL, COMMERCIAL or GOVERNMENT.
    #[serde(default)]
    pub regulatory_type: Option<RegulatoryType>,
    /// The inbound rate plan product new accounts get. Alianza needs one only for accounts with
    /// toll-free numbers (its partition setting InboundRatePlanDefault applies otherwise): sent
    /// when set.
    #[serde(default)]
    pub inbound_rate_plan_product_id: Option<String>,
    /// CPE1 (basic telephone features) or CPE2 (business cloud features; Alianza's new platform
    /// features need it). Left out: the partition's default platform type.
    #[serde(default)]
    pub platform_type: Option<PlatformType>,
    /// The dialling behaviour when CreateAccount leaves it unspecified: SEVEN_DIGIT, TEN_DIGIT,
    /// OPEN_DIAL_PLAN, DIAL_NINE_SEVEN_DIGIT, DIAL_NINE_TEN_DIGIT (both ADVANCED only) or
    /// OPEN_DIAL_PLAN_TEN_DIGIT.
    #[serde(default)]
    pub dialing_behavior: Option<DialingBehavior>,
    /// The billing cycle day (1-28) when CreateAccount leaves it 0: your billing day.
    #[serde(default)]
    pub billing_cycle_day: Option<u8>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegulatoryType {
    Residential,
    Commercial,
    Government,
}

/// The platform types new accounts may be created on.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum PlatformType {
    #[serde(rename = "CPE1")]
    Cpe1,
    #[serde(rename = "CPE2")]
    Cpe2,
}

impl PlatformType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Cpe1 => "CPE1",
            Self::Cpe2 => "CPE2",
        }
    }
}

impl RegulatoryType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Residential => "RESIDENTIAL",
            Self::Commercial => "COMMERCIAL",
            Self::Government => "GOVERNMENT",
        }
    }
}

/// The JSON Schema of the trigger, for `patchbay schema`.
pub fn schema(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<AlianzaConfig>()
}

/// Where the client sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Api {
    Simulator,
    Url(String),
}

/// A validated trigger, ready to build.
struct AlianzaBuild {
    settings: AccountSettings,
    api: Api,
    partition_id: String,
    username: SecretString,
    password: SecretString,
    timeout: Duration,
    create_defaults: Option<CreateDefaults>,
}

/// Pure validation of `triggers.account` (no I/O but resolving the two secrets).
pub fn validate(raw: &Value, ctx: &mut ValidateCtx<'_>) -> Option<Box<dyn BuildTrigger<AccountTrigger>>> {
    let cfg: AlianzaConfig = ctx.deserialize(raw)?;
    let before = ctx.problem_count();

    let api = check_api_url(&cfg.api_url, ctx);
    let admin_portal_url = match cfg.admin_portal_url.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(url) => {
            if web_url(url).is_err() {
                ctx.problem("admin_portal_url", "must be an http:// or https:// URL, e.g. https://admin.alianza.com");
            }
            url.to_owned()
        }
    };
    let partition_id = cfg.partition_id.trim().to_owned();
    if partition_id.is_empty()
        || partition_id.contains(['/', '?', '#'])
        || partition_id.chars().any(char::is_whitespace)
    {
        ctx.problem("partition_id", "must be your Alianza partition id: non-empty, no blanks, `/`, `?` or `#`");
    }

    let username_key = key_as_written(raw, "username", "API_USERNAME");
    let password_key = key_as_written(raw, "password", "API_PASSWORD");
    for (key, secret) in [(username_key, &cfg.username), (password_key, &cfg.password)] {
        if matches!(secret, SecretRef::Literal(v) if v.trim().is_empty()) {
            ctx.problem(key, "must not be empty");
        }
    }
    let username = ctx.secret(username_key, &cfg.username);
    let password = ctx.secret(password_key, &cfg.password);

    let number_key = key_as_written(raw, "account_number_field", "Account_Number_Field");
    if let Some(field) = cfg.account_number_field.as_deref()
        && field.trim() != field
    {
        ctx.problem(number_key, "must not start or end with blanks");
    }
    let account_number_field = AccountNumberField::from_yaml(cfg.account_number_field.as_deref());

    let status_map = match &cfg.status_map {
        None => Some(StatusMap::default()),
        Some(written) => StatusMap::check(written, ctx),
    };

    let defaults = cfg.account_defaults.as_ref();
    if let Some(d) = defaults {
        if d.billing_cycle_day.is_some_and(|day| !(1..=28).contains(&day)) {
            ctx.problem("account_defaults.billing_cycle_day", "must be 1-28 (Alianza's billing cycle days)");
        }
        for (key, value) in
            [("time_zone", &d.time_zone), ("inbound_rate_plan_product_id", &d.inbound_rate_plan_product_id)]
        {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                ctx.problem(&format!("account_defaults.{key}"), "must not be blank; leave the key out instead");
            }
        }
    }
    if let Some(zone) = defaults.and_then(|d| d.time_zone.as_deref()).map(str::trim)
        && !zone.is_empty()
        && !TIME_ZONES.contains(&zone)
    {
        ctx.problem(
            "account_defaults.time_zone",
            format!("`{zone}` is not one of Alianza's time zones: {}", TIME_ZONES.join(", ")),
        );
    }
    let create_defaults = defaults.and_then(|d| {
        Some(CreateDefaults {
            time_zone: d.time_zone.clone()?.trim().to_owned(),
            regulatory_type: d.regulatory_type?.as_str().to_owned(),
            inbound_rate_plan_product_id: d.inbound_rate_plan_product_id.as_deref().map(|p| p.trim().to_owned()),
            platform_type: d.platform_type.map(|p| p.as_str().to_owned()),
        })
    });
    let flat =
        [cfg.flat_dial_number, cfg.flat_display_name, cfg.flat_password, cfg.flat_port_number, cfg.flat_user_name];
    let sip_table = match (&cfg.custom_sip_table, flat.iter().any(Option::is_some)) {
        (Some(_), true) => {
            for (key, id) in FLAT_SIP_TABLE_KEYS.iter().zip(flat) {
                if id.is_some() {
                    ctx.problem(
                        key,
                        "set both here and in `custom_sip_table`: give the SIP table's field IDs in one place",
                    );
                }
            }
            None
        }
        (Some(table), false) => table.check(raw, ctx),
        (None, true) => flat_sip_table(flat, ctx),
        (None, false) => None,
    };
    let has_sip_table = cfg.custom_sip_table.is_some() || flat.iter().any(Option::is_some);
    if cfg.synchro_console {
        // The console's actions need these; saying so now beats a failed CreateAccount later.
        let needed = "synchro_console: true needs it (CreateAccount takes it from here)";
        match defaults {
            None => ctx.problem(
                "account_defaults",
                "missing: synchro_console: true needs account_defaults with time_zone and regulatory_type \
                 (CreateAccount takes them from here)",
            ),
            Some(d) => {
                if d.time_zone.is_none() {
                    ctx.problem("account_defaults.time_zone", format!("missing: {needed}"));
                }
                if d.regulatory_type.is_none() {
                    ctx.problem("account_defaults.regulatory_type", format!("missing: {needed}"));
                }
            }
        }
        if !has_sip_table {
            ctx.problem(
                "custom_sip_table",
                "missing: synchro_console: true needs the field IDs of the CRM's SIP table (SyncSipLines fills it), \
                 in custom_sip_table: or as the five Custom_SIP_Table_* keys",
            );
        }
    }
    let timeout = match cfg.timeout_ms {
        None => DEFAULT_TIMEOUT,
        Some(ms) if (100..=MAX_TIMEOUT.as_millis() as u64).contains(&ms) => Duration::from_millis(ms),
        Some(_) => {
            ctx.problem(
                "timeout_ms",
                format!(
                    "must be 100-{} (milliseconds): a status delivery makes up to seven requests in a row and must \
                     finish within {} s",
                    MAX_TIMEOUT.as_millis(),
                    crate::account::provider::DELIVERY_BUDGET.as_secs()
                ),
            );
            DEFAULT_TIMEOUT
        }
    };

    let (Some(api), Some(username), Some(password), Some(status_map)) = (api, username, password, status_map) else {
        return None;
    };
    if ctx.problem_count() != before {
        return None;
    }
    let settings = AccountSettings {
        customer_status: cfg.customer_status,
        synchro_console: cfg.synchro_console,
        admin_portal_url,
        account_number_field,
        status_map,
        default_billing_cycle_day: defaults.and_then(|d| d.billing_cycle_day),
        default_dialing_behavior: defaults.and_then(|d| d.dialing_behavior),
        sip_table,
    };
    Some(Box::new(AlianzaBuild { settings, api, partition_id, username, password, timeout, create_defaults }))
}

fn web_url(text: &str) -> Result<reqwest::Url, ()> {
    let url: reqwest::Url = text.parse().map_err(|_| ())?;
    let ok = matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty());
    if ok { Ok(url) } else { Err(()) }
}

fn check_api_url(text: &str, ctx: &mut ValidateCtx<'_>) -> Option<Api> {
    let text = text.trim();
    if text == "simulator" {
        return simulator_allowed(ctx, "api_url").then_some(Api::Simulator);
    }
    let rule = "must be `simulator` or Alianza's base URL, e.g. https://api.alianza.com (no /v2, query or fragment)";
    match web_url(text) {
        Ok(url) if url.query().is_none() && url.fragment().is_none() && !url.path().contains("/v2") => {
            Some(Api::Url(text.trim_end_matches('/').to_owned()))
        }
        _ => {
            ctx.problem("api_url", rule);
            None
        }
    }
}

impl BuildTrigger<AccountTrigger> for AlianzaBuild {
    fn build(&self, deps: &BuildDeps) -> anyhow::Result<AccountTrigger> {
        let base_url = match &self.api {
            Api::Url(url) => url.clone(),
            #[cfg(not(feature = "simulators"))]
            Api::Simulator => anyhow::bail!("this build of patchbay has no simulators"),
            #[cfg(feature = "simulators")]
            Api::Simulator => {
                use secrecy::ExposeSecret;
                let sim = deps.sims.get_or_start(|| super::sim::AlianzaSim::start(([127, 0, 0, 1], 0).into()))?;
                // The in-process simulator plays this tenant's Alianza: it knows its login, its
                // rate plan, and the demo accounts.
                sim.add_login(self.username.expose_secret(), self.password.expose_secret(), &self.partition_id);
                sim.seed_demo(&self.partition_id);
                if let Some(plan) = self.create_defaults.as_ref().and_then(|d| d.inbound_rate_plan_product_id.as_ref())
                {
                    sim.add_rate_plan(&self.partition_id, plan);
                }
                sim.url()
            }
        };
        let client = AlianzaClient::new(
            deps.vendor_http(super::client::PROVIDER),
            ClientConfig {
                base_url,
                partition_id: self.partition_id.clone(),
                username: self.username.clone(),
                password: self.password.clone(),
                timeout: self.timeout,
                read_backoff: READ_BACKOFF,
                create_defaults: self.create_defaults.clone(),
            },
        )
        .map_err(anyhow::Error::msg)?;
        Ok(AccountTrigger { settings: Arc::new(self.settings.clone()), provider: Arc::new(client) })
    }
}

#[cfg(test)]
mod tests;
