//! The Delacon Provisioning API client: form-encoded POSTs with the `Auth` header, every
//! `RESULT` mapped to the domain.
//!
//! Reads (`getnumbertypes`) are retried with backoff. Changes (`provision`, `updatecustomer`) are
//! sent once: an order whose answer never came (timeout, HTTP 5xx, garbage) may have been placed,
//! so it is reported as [`ErrorKind::OutcomeUnknown`] and never sent again by us.

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::wire::{self, Answer};
use crate::{
    ops::{metrics::Metrics, retry::Backoff},
    provisioning::provider::{
        CustomerUpdate, ErrorKind, NumberOrder, NumberProvider, NumberType, OrderFor, OrderState, ProviderError,
        Region, RegionNumberTypes, UpdateStep, VendorOrder,
    },
};

/// The provider name, in metrics and audit rows.
pub const PROVIDER: &str = "delacon";

/// How reads are retried.
const READ_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 3);
/// The longest a single read attempt may take: three of them must fit a caller's patience.
const MAX_READ_TIMEOUT: Duration = Duration::from_secs(8);
/// What a caller is told to wait before retrying after the vendor was unavailable.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A Delacon client for one API key.
pub struct DelaconClient {
    http: reqwest::Client,
    /// `https://pla.delaconcorp.com/rest/config`.
    base: Url,
    auth: SecretString,
    timeout: Duration,
    backoff: Backoff,
}

impl std::fmt::Debug for DelaconClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelaconClient").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

/// How one HTTP exchange ended, before its `RESULT` is looked at.
enum Exchange {
    /// A JSON answer with a `RESULT` (or getnumbertypes' `Region`), whatever the HTTP status.
    Answer(Answer),
    /// The request never reached the vendor (connection refused, DNS): it had no effect.
    NotSent(String),
    /// Sent, but no answer in time.
    TimedOut,
    /// An HTTP error status without a readable answer.
    Status(u16),
    /// HTTP 2xx with a body that is not a Delacon answer.
    Garbage(String),
}

impl DelaconClient {
    pub fn new(http: reqwest::Client, base: Url, auth: SecretString, timeout: Duration) -> Self {
        Self { http, base, auth, timeout, backoff: READ_BACKOFF }
    }

    /// `base/seg1/seg2`, each segment percent-encoded (`Hong Kong` -> `Hong%20Kong`).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            // http(s) URLs always have path segments (validated in config).
            let mut path = url.path_segments_mut().expect("an http(s) URL");
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        url
    }

    async fn post(&self, url: Url, form: &[(&'static str, String)], timeout: Duration, metrics: &Metrics) -> Exchange {
        let sent = self
            .http
            .post(url)
            .header(wire::AUTH_HEADER, self.auth.expose_secret())
            .form(form)
            .timeout(timeout)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return self.failed(e, metrics),
        };
        let status = resp.status();
        metrics.vendor_call(PROVIDER, status.as_str());
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Exchange::TimedOut,
            Err(e) => return Exchange::Garbage(format!("reading the answer failed: {}", e.without_url())),
        };
        match serde_json::from_slice::<Answer>(&body) {
            Ok(a) if a.result.is_some() || a.region.is_some() => Exchange::Answer(a),
            _ if !status.is_success() => Exchange::Status(status.as_u16()),
            _ => Exchange::Garbage(format!("HTTP {} with a body that is not a Delacon answer", status.as_u16())),
        }
    }

    fn failed(&self, e: reqwest::Error, metrics: &Metrics) -> Exchange {
        if e.is_connect() {
            metrics.vendor_call(PROVIDER, "error");
            // The source chain says why (refused, DNS), without the URL.
            let why = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| "connect error".into());
            return Exchange::NotSent(format!("cannot connect to Delacon: {why}"));
        }
        if e.is_timeout() {
            metrics.vendor_call(PROVIDER, "timeout");
            return Exchange::TimedOut;
        }
        metrics.vendor_call(PROVIDER, "error");
        Exchange::Garbage(format!("the exchange with Delacon failed: {}", e.without_url()))
    }

    fn error(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> ProviderError {
        ProviderError { kind, domain: wire::DOMAIN, vendor_code: code.into(), message: message.into() }
    }

    /// The error of an answer whose RESULT is not a success for any call.
    fn refusal(answer: &Answer) -> Option<ProviderError> {
        let message = answer.message.clone().unwrap_or_default();
        match answer.result.as_deref() {
            Some(wire::INVALID) => Some(Self::error(ErrorKind::Invalid, wire::INVALID, message)),
            Some(wire::LOGIN_FAILED) => Some(Self::error(ErrorKind::AuthFailed, wire::LOGIN_FAILED, message)),
            _ => None,
        }
    }

    /// The error of an exchange that carried no answer, for a change (sent once).
    fn change_error(&self, exchange: Exchange) -> ProviderError {
        match exchange {
            Exchange::Answer(a) => Self::error(
                ErrorKind::OutcomeUnknown { timed_out: false },
                a.result.clone().unwrap_or_default(),
                format!("Delacon answered RESULT `{}`, which this call does not expect", a.result.unwrap_or_default()),
            ),
            Exchange::NotSent(why) => Self::error(ErrorKind::Unavailable { retry_after: RETRY_AFTER }, "error", why),
            Exchange::TimedOut => Self::error(
                ErrorKind::OutcomeUnknown { timed_out: true },
                "timeout",
                format!("Delacon did not answer within {} ms", self.timeout.as_millis()),
            ),
            Exchange::Status(code) if code == 401 || code == 403 => {
                Self::error(ErrorKind::AuthFailed, code.to_string(), format!("Delacon answered HTTP {code}"))
            }
            Exchange::Status(code) if code < 500 => Self::error(
                // A 4xx is a refusal before any processing (a wrong api_url, a proxy): nothing happened.
                ErrorKind::Unavailable { retry_after: RETRY_AFTER },
                code.to_string(),
                format!("Delacon answered HTTP {code}; check the trigger's api_url"),
            ),
            Exchange::Status(code) => Self::error(
                ErrorKind::OutcomeUnknown { timed_out: false },
                code.to_string(),
                format!("Delacon answered HTTP {code}"),
            ),
            Exchange::Garbage(why) => Self::error(ErrorKind::OutcomeUnknown { timed_out: false }, "garbage", why),
        }
    }
}

#[tonic::async_trait]
impl NumberProvider for DelaconClient {
    async fn provision(&self, order: &NumberOrder, metrics: &Metrics) -> Result<VendorOrder, ProviderError> {
        let form = wire::provision_form(order);
        let answer = match self.post(self.url(&["provision"]), &form, self.timeout, metrics).await {
            Exchange::Answer(a) => a,
            other => return Err(self.change_error(other)),
        };
        if let Some(err) = Self::refusal(&answer) {
            return Err(err);
        }
        let state = match answer.result.as_deref() {
            Some(wire::OK) => OrderState::Completed,
            Some(wire::WAIT) => OrderState::Pending,
            Some(wire::FAIL) => OrderState::Failed,
            _ => return Err(self.change_error(Exchange::Answer(answer))),
        };
        let message = answer.message.clone().unwrap_or_default();
        let Some(order_id) = answer.order_id.clone().filter(|id| !id.trim().is_empty()) else {
            // A FAIL without an order: the order was refused outright.
            if state == OrderState::Failed {
                return Err(Self::error(ErrorKind::Failed, wire::FAIL, message));
            }
            return Err(Self::error(
                ErrorKind::OutcomeUnknown { timed_out: false },
                answer.result.unwrap_or_default(),
                "Delacon's answer has no OrderId",
            ));
        };
        let ordered_for = match &order.who {
            OrderFor::Company(id) => Some(id.clone()),
            OrderFor::NewCustomer(_) => None,
        };
        Ok(VendorOrder {
            order_id,
            state,
            company_id: answer.company_id.clone().filter(|c| !c.is_empty()).or(ordered_for),
            numbers: answer.number_list(),
            message,
        })
    }

    async fn update_customer(
        &self,
        update: &CustomerUpdate,
        metrics: &Metrics,
    ) -> Result<Vec<UpdateStep>, ProviderError> {
        let url = self.url(&["updatecustomer", &update.company_id]);
        let mut steps = Vec::new();
        for (i, request) in wire::update_requests(update).into_iter().enumerate() {
            let outcome = match self.post(url.clone(), &request.form, self.timeout, metrics).await {
                Exchange::Answer(a) => match Self::refusal(&a) {
                    Some(err) => Err(err),
                    None => match a.result.as_deref() {
                        Some(wire::OK) => Ok((true, a.message.unwrap_or_default())),
                        Some(wire::FAIL) => Ok((false, a.message.unwrap_or_default())),
                        _ => Err(self.change_error(Exchange::Answer(a))),
                    },
                },
                other => Err(self.change_error(other)),
            };
            match outcome {
                Ok((ok, message)) => {
                    steps.push(UpdateStep { parameters: request.parameters, ok, message });
                    if !ok {
                        break;
                    }
                }
                // Nothing was applied yet: the whole call failed.
                Err(err) if i == 0 => return Err(err),
                Err(err) => {
                    let message = match err.kind {
                        ErrorKind::OutcomeUnknown { .. } => {
                            format!("{}; this step may or may not have been applied", err.message)
                        }
                        _ => format!("{} ({})", err.message, err.vendor_code),
                    };
                    steps.push(UpdateStep { parameters: request.parameters, ok: false, message });
                    break;
                }
            }
        }
        Ok(steps)
    }

    async fn number_types(&self, region: Region, metrics: &Metrics) -> Result<RegionNumberTypes, ProviderError> {
        let url = self.url(&["getnumbertypes", wire::region_name(region)]);
        let timeout = self.timeout.min(MAX_READ_TIMEOUT);
        let mut attempt = 1;
        loop {
            let exchange = self.post(url.clone(), &[], timeout, metrics).await;
            let retryable = match exchange {
                Exchange::Answer(a) => {
                    if let Some(err) = Self::refusal(&a) {
                        return Err(err);
                    }
                    if let Some(types) = a.number_types {
                        return Ok(RegionNumberTypes {
                            region_code: a.region.unwrap_or_default(),
                            types: types.into_iter().map(|t| NumberType { key: t.key, description: t.desc }).collect(),
                        });
                    }
                    let message = a.message.unwrap_or_default();
                    return Err(Self::error(ErrorKind::Failed, a.result.unwrap_or_default(), message));
                }
                Exchange::NotSent(why) => why,
                Exchange::TimedOut => format!("Delacon did not answer within {} ms", timeout.as_millis()),
                Exchange::Status(code) if code >= 500 || code == 429 => format!("Delacon answered HTTP {code}"),
                Exchange::Status(code) if code == 401 || code == 403 => {
                    return Err(Self::error(
                        ErrorKind::AuthFailed,
                        code.to_string(),
                        format!("Delacon answered HTTP {code}"),
                    ));
                }
                Exchange::Status(code) => {
                    return Err(Self::error(
                        ErrorKind::Unavailable { retry_after: RETRY_AFTER },
                        code.to_string(),
                        format!("Delacon answered HTTP {code}; check the trigger's api_url"),
                    ));
                }
                Exchange::Garbage(why) => why,
            };
            if !self.backoff.allows(attempt) {
                return Err(Self::error(
                    ErrorKind::Unavailable { retry_after: RETRY_AFTER },
                    "unavailable",
                    format!("{retryable} (after {attempt} attempts)"),
                ));
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            attempt += 1;
        }
    }
}
