//! The Delacon Provisioning API client: form-encoded POSTs with the `Auth` header, every
//! `RESULT` mapped to the domain.
//!
//! Reads (`getnumbertypes`) are retried with backoff. Changes (`provision`, `updatecustomer`) are
//! sent once: a change whose answer never came (timeout, HTTP 5xx, an unreadable or oversized
//! body) may have been applied, so it is reported as `OutcomeUnknown` and never sent
//! again by us; one that provably never reached Delacon (no connection) is
//! `Unavailable`. A `FAIL` is Delacon's definite refusal (`Rejected`).
//! Every answer body is read up to [`MAX_BODY`] bytes; a longer one counts as unreadable.

use std::time::Duration;

use reqwest::{Url, header::HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use super::wire::{self, Answer};
use crate::{
    ops::{
        retry::Backoff,
        vendor::VendorHttp,
        vendor_error::{VendorFailure as ErrorKind, VendorFault},
    },
    provisioning::provider::{
        CustomerUpdate, NumberOrder, NumberProvider, NumberType, OrderFor, OrderState, ProviderError, Region,
        RegionNumberTypes, UpdateStep, VendorOrder,
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
/// The largest answer body read; Delacon's answers are a few hundred bytes.
pub const MAX_BODY: usize = 4 << 20;
/// The longest vendor message passed on (Delacon's are a sentence).
const MAX_VENDOR_TEXT: usize = 1000;
/// The tenant key to check when Delacon's answers show the trigger points at the wrong place.
const API_URL_KEY: &str = "triggers.provisioning.api_url";

/// A Delacon client for one API key.
pub struct DelaconClient {
    http: VendorHttp,
    /// `https://pla.delaconcorp.com/rest/config`.
    base: Url,
    /// The `Auth` header's value, marked sensitive so that no HTTP-level debug output shows it.
    auth: HeaderValue,
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
    /// Fails only for an API key that cannot be a header value (validation refuses those).
    pub fn new(http: VendorHttp, base: Url, auth: &SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let mut auth = HeaderValue::from_str(auth.expose_secret())
            .map_err(|_| anyhow::anyhow!("the Delacon API key is not a valid HTTP header value"))?;
        auth.set_sensitive(true);
        Ok(Self { http, base, auth, timeout, backoff: READ_BACKOFF })
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

    /// One POST of `operation` (`provision`, `updatecustomer`, `getnumbertypes`).
    async fn post(
        &self,
        operation: &'static str,
        url: Url,
        form: &[(&'static str, String)],
        timeout: Duration,
    ) -> Exchange {
        let request =
            self.http.client().post(url).header(wire::AUTH_HEADER, self.auth.clone()).form(form).timeout(timeout);
        let (status, body) = match self.http.exchange(operation, request, MAX_BODY).await {
            Ok(answer) => (answer.status, answer.body),
            Err(e) => return Self::failed(e),
        };
        let Some(body) = body else {
            return Exchange::Garbage(format!("HTTP {} with an answer larger than {MAX_BODY} bytes", status.as_u16()));
        };
        match serde_json::from_slice::<Answer>(&body) {
            Ok(mut a) if a.result.is_some() || a.region.is_some() => {
                // Its words reach callers, logs and the order store: never the key, never a flood.
                a.result = a.result.map(|r| self.scrub(&r));
                a.message = a.message.map(|m| self.scrub(&m));
                Exchange::Answer(a)
            }
            _ if !status.is_success() => Exchange::Status(status.as_u16()),
            _ => Exchange::Garbage(format!("HTTP {} with a body that is not a Delacon answer", status.as_u16())),
        }
    }

    /// A vendor text as patchbay passes it on: the API key blanked out, at most
    /// [`MAX_VENDOR_TEXT`] characters, no control characters.
    fn scrub(&self, text: &str) -> String {
        let key = self.auth.to_str().unwrap_or_default();
        let text = if key.is_empty() { text.to_owned() } else { text.replace(key, "<redacted>") };
        let mut out: String =
            text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_VENDOR_TEXT).collect();
        if text.chars().count() > MAX_VENDOR_TEXT {
            out.push('…');
        }
        out
    }

    fn failed(e: reqwest::Error) -> Exchange {
        if e.is_connect() {
            // The source chain says why (refused, DNS), without the URL.
            let why = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| "connect error".into());
            return Exchange::NotSent(format!("cannot connect to Delacon: {why}"));
        }
        if e.is_timeout() {
            return Exchange::TimedOut;
        }
        Exchange::Garbage(format!("the exchange with Delacon failed: {}", e.without_url()))
    }

    fn error(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> ProviderError {
        let message = message.into();
        let fault =
            VendorFault { domain: wire::DOMAIN, http_status: None, code: code.into(), message: message.clone() };
        ProviderError::new(kind, PROVIDER, fault, message)
    }

    /// The error of an answer whose RESULT is not a success for any call.
    fn refusal(&self, answer: &Answer) -> Option<ProviderError> {
        let message = answer.message.clone().unwrap_or_default();
        match answer.result.as_deref() {
            Some(wire::INVALID) => Some(Self::error(ErrorKind::Invalid, wire::INVALID, message)),
            Some(wire::LOGIN_FAILED) => {
                self.http.credentials_refused(&message);
                Some(Self::error(ErrorKind::AuthFailed { locked_out: false }, wire::LOGIN_FAILED, message))
            }
            _ => None,
        }
    }

    /// The error of an HTTP status without a Delacon answer that no retry can fix, for a read or a
    /// change alike: the request was refused before any processing. `None`: a 5xx, 408 or 429.
    fn refused_status(&self, code: u16) -> Option<ProviderError> {
        match code {
            401 | 403 => Some({
                self.http.credentials_refused(&format!("Delacon answered HTTP {code}"));
                Self::error(
                    ErrorKind::AuthFailed { locked_out: false },
                    code.to_string(),
                    format!("Delacon answered HTTP {code}"),
                )
            }),
            408 | 429 => None,
            // Delacon answers JSON whatever the outcome: a bare 404 (or 405, 400, ...) is a
            // wrong base path or something in between.
            400..=499 => Some(Self::error(
                ErrorKind::Misconfigured { keys: API_URL_KEY },
                code.to_string(),
                format!(
                    "Delacon's API answered HTTP {code} without a Delacon answer; check the tenant's {API_URL_KEY}"
                ),
            )),
            _ => None,
        }
    }

    /// The error of an exchange that carried no usable answer, for a change (sent once).
    fn change_error(&self, exchange: Exchange) -> ProviderError {
        match exchange {
            Exchange::Answer(a) => Self::error(
                ErrorKind::OutcomeUnknown,
                a.result.clone().unwrap_or_default(),
                format!("Delacon answered RESULT `{}`, which this call does not expect", a.result.unwrap_or_default()),
            ),
            Exchange::NotSent(why) => Self::error(ErrorKind::Unavailable { retry_after: RETRY_AFTER }, "error", why),
            Exchange::TimedOut => Self::error(
                ErrorKind::OutcomeUnknown,
                "timeout",
                format!("Delacon did not answer within {} ms", self.timeout.as_millis()),
            ),
            Exchange::Status(code) => match self.refused_status(code) {
                Some(err) => err,
                // Refused before processing: nothing happened, and the same call may work later.
                None if code == 408 || code == 429 => Self::error(
                    ErrorKind::Unavailable { retry_after: RETRY_AFTER },
                    code.to_string(),
                    format!("Delacon answered HTTP {code}"),
                ),
                None => {
                    Self::error(ErrorKind::OutcomeUnknown, code.to_string(), format!("Delacon answered HTTP {code}"))
                }
            },
            Exchange::Garbage(why) => Self::error(ErrorKind::OutcomeUnknown, "garbage", why),
        }
    }
}

#[tonic::async_trait]
impl NumberProvider for DelaconClient {
    async fn provision(&self, order: &NumberOrder) -> Result<VendorOrder, ProviderError> {
        let form = wire::provision_form(order);
        let answer = match self.post("provision", self.url(&["provision"]), &form, self.timeout).await {
            Exchange::Answer(a) => a,
            other => return Err(self.change_error(other)),
        };
        if let Some(err) = self.refusal(&answer) {
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
            // A FAIL without an order: Delacon refused the order outright; nothing was placed.
            if state == OrderState::Failed {
                return Err(Self::error(ErrorKind::Rejected, wire::FAIL, message));
            }
            return Err(Self::error(
                ErrorKind::OutcomeUnknown,
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

    async fn update_customer(&self, update: &CustomerUpdate) -> Result<Vec<UpdateStep>, ProviderError> {
        let url = self.url(&["updatecustomer", &update.company_id]);
        let mut steps = Vec::new();
        for (i, request) in wire::update_requests(update).into_iter().enumerate() {
            let outcome = match self.post("updatecustomer", url.clone(), &request.form, self.timeout).await {
                Exchange::Answer(a) => match self.refusal(&a) {
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
                    let message = match err.failure {
                        ErrorKind::OutcomeUnknown => {
                            format!("{}; this step may or may not have been applied", err.fault.message)
                        }
                        _ => format!("{} ({})", err.fault.message, err.fault.code),
                    };
                    steps.push(UpdateStep { parameters: request.parameters, ok: false, message });
                    break;
                }
            }
        }
        Ok(steps)
    }

    fn answer_timeout(&self) -> Duration {
        self.timeout
    }

    async fn number_types(&self, region: Region) -> Result<RegionNumberTypes, ProviderError> {
        let url = self.url(&["getnumbertypes", wire::region_name(region)]);
        let timeout = self.timeout.min(MAX_READ_TIMEOUT);
        let mut attempt = 1;
        loop {
            let exchange = self.post("getnumbertypes", url.clone(), &[], timeout).await;
            let retryable = match exchange {
                Exchange::Answer(a) => {
                    if let Some(err) = self.refusal(&a) {
                        return Err(err);
                    }
                    if let Some(types) = a.number_types {
                        return Ok(RegionNumberTypes {
                            region_code: a.region.unwrap_or_default(),
                            types: types.into_iter().map(|t| NumberType { key: t.key, description: t.desc }).collect(),
                        });
                    }
                    if a.result.as_deref() == Some(wire::FAIL) {
                        // A definite answer to a request fully determined by the region (one of
                        // the documented eight) and the API key (accepted, or it would be
                        // LOGIN_FAILED): asking again gets the same FAIL, so it is not retried.
                        // A Delacon outage shows as 5xx or timeouts, which are.
                        let message = a.message.unwrap_or_default();
                        return Err(Self::error(ErrorKind::Rejected, wire::FAIL, message));
                    }
                    format!("Delacon answered RESULT `{}` without number types", a.result.unwrap_or_default())
                }
                Exchange::NotSent(why) => why,
                Exchange::TimedOut => format!("Delacon did not answer within {} ms", timeout.as_millis()),
                Exchange::Status(code) => match self.refused_status(code) {
                    Some(err) => return Err(err),
                    None => format!("Delacon answered HTTP {code}"),
                },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimServer;

    const KEY: &str = "key-0123456789";

    fn client(base: &str) -> DelaconClient {
        let key = SecretString::from(KEY);
        let http = VendorHttp::new(reqwest::Client::new(), Default::default(), PROVIDER, "acme");
        DelaconClient::new(http, Url::parse(base).unwrap(), &key, Duration::from_secs(2)).unwrap()
    }

    #[test]
    fn the_auth_header_is_marked_sensitive_and_out_of_debug_output() {
        let client = client("http://127.0.0.1:1/rest/config");
        assert!(client.auth.is_sensitive());
        assert!(!format!("{client:?}").contains(KEY));
        assert!(!format!("{:?}", client.auth).contains(KEY));
    }

    #[test]
    fn vendor_texts_lose_the_api_key_control_characters_and_excess_length() {
        let client = client("http://127.0.0.1:1/rest/config");
        assert_eq!(client.scrub(&format!("Invalid key {KEY}\nretry")), "Invalid key <redacted> retry");
        let long = client.scrub(&"x".repeat(5000));
        assert_eq!(long.chars().count(), MAX_VENDOR_TEXT + 1);
    }

    #[tokio::test]
    async fn an_answer_announced_larger_than_the_cap_is_not_read() {
        use axum::{Router, routing::post};
        // A Delacon answer, padded: valid JSON, with its length announced.
        let body = format!("{{\"Region\":\"ja-jp\",\"NumberTypes\":[]}}{}", " ".repeat(MAX_BODY));
        let router = Router::new().route("/getnumbertypes/{location}", post(move || async move { body.clone() }));
        let server = SimServer::start(router, ([127, 0, 0, 1], 0).into()).unwrap();
        let mut client = client(&server.url());
        client.backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(1), 2);
        let err = client.number_types(Region::Japan).await.unwrap_err();
        assert!(matches!(err.failure, ErrorKind::Unavailable { .. }), "{err:?}");
        assert!(err.message.contains(&format!("larger than {MAX_BODY} bytes")), "{err}");
    }
}
