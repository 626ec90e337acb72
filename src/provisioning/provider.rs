//! What a number-provisioning vendor does for patchbay, in domain terms: the [`NumberProvider`]
//! trait, the orders, customer updates and number types it deals in, and its errors.
//!
//! Nothing here knows a vendor's wire format; each vendor's folder maps these types to its own.

use std::{fmt, time::Duration};

/// A region numbers can be ordered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    Australia,
    China,
    HongKong,
    Japan,
    NewZealand,
    Singapore,
    UnitedKingdom,
    UnitedStates,
}

impl Region {
    pub const ALL: [Region; 8] = [
        Region::Australia,
        Region::China,
        Region::HongKong,
        Region::Japan,
        Region::NewZealand,
        Region::Singapore,
        Region::UnitedKingdom,
        Region::UnitedStates,
    ];

    /// The region's name for people, e.g. `Hong Kong`.
    pub fn name(self) -> &'static str {
        match self {
            Region::Australia => "Australia",
            Region::China => "China",
            Region::HongKong => "Hong Kong",
            Region::Japan => "Japan",
            Region::NewZealand => "New Zealand",
            Region::Singapore => "Singapore",
            Region::UnitedKingdom => "United Kingdom",
            Region::UnitedStates => "United States",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A feature provisioned with new numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    CallRecording,
    CallFeedbackSurvey,
}

/// A customer created together with its first order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewCustomer {
    pub business_name: String,
    pub business_category: String,
    pub email: String,
    pub termination_number: String,
    pub business_id: String,
}

/// Whom numbers are ordered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderFor {
    NewCustomer(NewCustomer),
    /// An existing company, by the vendor's company id.
    Company(String),
}

/// A validated number order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberOrder {
    pub who: OrderFor,
    /// Only for a new customer (an existing company keeps its own).
    pub features: Vec<Feature>,
    /// Only for a new customer (an existing company's numbers come in its own region).
    pub region: Option<Region>,
    pub number_type: Option<String>,
    /// 1-10.
    pub count: u8,
    pub order_summary_email: Option<String>,
    pub terms_accepted: bool,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    /// Accepted; the vendor completes it later and calls back.
    Pending,
    Completed,
    Failed,
}

impl OrderState {
    /// Whether the order can change no more.
    pub fn is_final(self) -> bool {
        !matches!(self, OrderState::Pending)
    }

    /// The store's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Completed => "completed",
            OrderState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(OrderState::Pending),
            "completed" => Some(OrderState::Completed),
            "failed" => Some(OrderState::Failed),
            _ => None,
        }
    }
}

/// The vendor's answer to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorOrder {
    pub order_id: String,
    pub state: OrderState,
    /// The company the numbers belong to, when the vendor said (or the order named it).
    pub company_id: Option<String>,
    pub numbers: Vec<String>,
    pub message: String,
}

/// A later outcome of a pending order, as the vendor reports it in its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderOutcome {
    pub order_id: String,
    /// [`OrderState::Completed`] or [`OrderState::Failed`].
    pub state: OrderState,
    pub message: String,
}

/// How calls are transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    EmailOnly,
    TransferOnly,
    TransferAndEmail,
}

/// Which web referrals are tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTrack {
    GooglePaid,
    AllPaidOnly,
    All,
    Selected,
    AllUtmMediumCpc,
}

/// A validated change to a customer: `None` leaves a setting as it is.
///
/// Field names are those of the gRPC request; [`UpdateStep::parameters`] reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerUpdate {
    pub company_id: String,
    pub business_name: Option<String>,
    pub business_category: Option<String>,
    pub email: Option<String>,
    pub one_three_hundred_number: Option<String>,
    pub termination_number: Option<String>,
    pub business_id: Option<String>,
    pub whisper: Option<bool>,
    pub dnis: Option<bool>,
    pub transfer_type: Option<TransferType>,
    pub voicemail: Option<bool>,
    /// Seconds, 0-999.
    pub transfer_time: Option<u16>,
    pub music_on_hold: Option<bool>,
    /// At most 160 characters.
    pub sms_message: Option<String>,
    pub call_track: Option<CallTrack>,
    pub call_recording: Option<bool>,
    pub call_feedback_survey: Option<bool>,
    pub ivr: Option<bool>,
}

impl CustomerUpdate {
    /// The names of the settings this update changes, in request order.
    pub fn changed(&self) -> Vec<&'static str> {
        let set = [
            ("business_name", self.business_name.is_some()),
            ("business_category", self.business_category.is_some()),
            ("email", self.email.is_some()),
            ("one_three_hundred_number", self.one_three_hundred_number.is_some()),
            ("termination_number", self.termination_number.is_some()),
            ("business_id", self.business_id.is_some()),
            ("whisper", self.whisper.is_some()),
            ("dnis", self.dnis.is_some()),
            ("transfer_type", self.transfer_type.is_some()),
            ("voicemail", self.voicemail.is_some()),
            ("transfer_time", self.transfer_time.is_some()),
            ("music_on_hold", self.music_on_hold.is_some()),
            ("sms_message", self.sms_message.is_some()),
            ("call_track", self.call_track.is_some()),
            ("call_recording", self.call_recording.is_some()),
            ("call_feedback_survey", self.call_feedback_survey.is_some()),
            ("ivr", self.ivr.is_some()),
        ];
        set.into_iter().filter(|(_, on)| *on).map(|(name, _)| name).collect()
    }
}

/// One vendor request of an update and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStep {
    /// The settings it carried, by gRPC field name.
    pub parameters: Vec<&'static str>,
    pub ok: bool,
    /// The vendor's message (it matters for billing), or why the step did not go through.
    pub message: String,
}

/// A number type a region offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberType {
    /// What an order names, e.g. `0120`.
    pub key: String,
    pub description: String,
}

/// The number types of one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionNumberTypes {
    /// The vendor's code of the region, e.g. `ja-jp`.
    pub region_code: String,
    pub types: Vec<NumberType>,
}

/// A vendor call that did not succeed: the vocabulary every area shares. `fault.message` is
/// the vendor's words (or what went wrong on the way); the edge words the caller's message.
pub type ProviderError = crate::ops::vendor_error::VendorError;

/// A number-provisioning vendor, as one tenant's credentials see it.
#[tonic::async_trait]
pub trait NumberProvider: Send + Sync + 'static {
    /// Places an order. Never retried: an order whose outcome is unclear is
    /// `VendorFailure::OutcomeUnknown`.
    async fn provision(&self, order: &NumberOrder) -> Result<VendorOrder, ProviderError>;

    /// Applies an update, in as many vendor requests as the vendor demands, stopping at the first
    /// that fails. `Err` only when the first request failed (nothing was changed, or, for
    /// `VendorFailure::OutcomeUnknown`, maybe its part); later failures are reported as steps.
    async fn update_customer(&self, update: &CustomerUpdate) -> Result<Vec<UpdateStep>, ProviderError>;

    /// The number types of a region (a read: retried with backoff).
    async fn number_types(&self, region: Region) -> Result<RegionNumberTypes, ProviderError>;

    /// The longest [`NumberProvider::provision`] waits for the vendor's answer: a submission
    /// older than this (plus a margin) without an answer is no longer in flight.
    fn answer_timeout(&self) -> Duration;
}

/// How the area answers a provider's order callback (the provider says it in its vendor's words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackReply {
    /// Stored (or held, or a duplicate): the vendor stops sending it.
    Accepted,
    /// Not a callback of this vendor's shape: nothing stored.
    Malformed(String),
    /// No such order: sending it again will not help.
    UnknownOrder(String),
    /// Not stored for now (too many held): the vendor tries again later.
    TryLater(String),
    /// Not stored (the database failed): the vendor tries again.
    Failed(String),
}

/// At most `max` characters of a text from outside (a vendor's message, a URL segment), marked
/// when cut.
pub fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}
