//! The client's transport: its session (one shared login, re-login on 401, logout when let go)
//! and the one way every request is sent, retried and its failure classified (the error policy
//! of [`super::AlianzaClient`]).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures::future::FutureExt;
use reqwest::{Method, StatusCode, Url, header::HeaderValue};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use super::{
    ACCOUNT_EXISTS_CODES, API_URL_KEY, CallError, DOMAIN, Inner, Kind, LOGOUT_TIMEOUT, MAX_BODY, PROVIDER, Session,
    Token, from_the_api,
};
use crate::{
    account::{
        alianza::wire::{self, VendorMessage},
        provider::{ProviderError, Rejection, VendorFault},
    },
    ops::vendor::Answer,
};

impl Drop for Inner {
    /// The last clone is let go (the tenant's file changed or went, or the server stops): log
    /// out, so that the session does not linger at Alianza for its 8-hour lifetime.
    fn drop(&mut self) {
        let Session::Ready(token) =
            std::mem::replace(self.session.get_mut().unwrap_or_else(|e| e.into_inner()), Session::Empty)
        else {
            return;
        };
        let mut logout = self.authorize_url.clone();
        logout.path_segments_mut().expect("checked in new()").push("logout");
        let req = self
            .http
            .client()
            .put(logout)
            .timeout(self.cfg.timeout.min(LOGOUT_TIMEOUT))
            .header("X-AUTH-TOKEN", HeaderValue::clone(&token));
        let http = self.http.clone();
        // One attempt: a logout that fails leaves a session that expires on its own.
        self.http.farewell(async move {
            match http.exchange("PUT logout", req, 4096).await {
                Ok(answer) if answer.status.is_success() => tracing::debug!("logged out of Alianza"),
                Ok(answer) => tracing::debug!(status = %answer.status, "Alianza refused the logout"),
                Err(e) => tracing::debug!(error = %e, "logging out of Alianza failed"),
            }
        });
    }
}

impl Inner {
    /// `{partition_url}/a/b/c`, each segment percent-encoded.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.partition_url.clone();
        url.path_segments_mut().expect("checked in new()").extend(segments);
        url
    }

    pub(super) fn fault(
        &self,
        http_status: Option<u16>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> VendorFault {
        VendorFault { domain: DOMAIN, http_status, code: code.into(), message: message.into() }
    }

    /// The session token, logging in (once, for every caller waiting) if there is none.
    pub(super) async fn token(self: &Arc<Self>) -> Result<Token, ProviderError> {
        let login = {
            let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
            match &*session {
                Session::Ready(token) => return Ok(Arc::clone(token)),
                Session::LoggingIn(login) => login.clone(),
                Session::Empty => {
                    let login = Arc::clone(self).login().boxed().shared();
                    *session = Session::LoggingIn(login.clone());
                    login
                }
            }
        };
        let result = login.clone().await;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Session::LoggingIn(current) = &*session
            && current.ptr_eq(&login)
        {
            // A failed login is not cached: the next call tries again.
            *session = match &result {
                Ok(token) => Session::Ready(Arc::clone(token)),
                Err(_) => Session::Empty,
            };
        }
        result
    }

    /// Forgets `used` after Alianza refused it, unless another call already replaced it.
    pub(super) fn invalidate(&self, used: &Token) {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Session::Ready(token) = &*session
            && Arc::ptr_eq(token, used)
        {
            *session = Session::Empty;
        }
    }

    /// `POST /v2/authorize`, retried like a read (a login changes nothing).
    pub(super) async fn login(self: Arc<Self>) -> Result<Token, ProviderError> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(&wire::AuthRequest {
            username: self.cfg.username.expose_secret(),
            password: self.cfg.password.expose_secret(),
        })
        .expect("JSON");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = self
                .http
                .client()
                .post(self.authorize_url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(self.cfg.timeout)
                .body(body.clone());
            let failure = match self.http.exchange("POST authorize", req, MAX_BODY).await {
                Err(e) => self.transport_error(&e, Kind::Read),
                Ok(Answer { status, body: None }) => self.unreadable(status, "an answer larger than 4 MiB", Kind::Read),
                Ok(Answer { status, body: Some(bytes) }) if status.is_success() => {
                    let answer = serde_json::from_slice::<wire::AuthAnswer>(&bytes).ok();
                    let header = answer
                        .and_then(|a| HeaderValue::from_str(&a.auth_token).ok().filter(|_| !a.auth_token.is_empty()));
                    match header {
                        Some(mut header) => {
                            header.set_sensitive(true);
                            tracing::debug!(partition = %self.cfg.partition_id, "logged in to Alianza");
                            return Ok(Arc::new(header));
                        }
                        None => self.unreadable(status, "the login answer has no authToken", Kind::Read),
                    }
                }
                Ok(Answer { status, body: Some(bytes) }) => {
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                        self.status_error(status, &bytes, Kind::Read)
                    } else {
                        let m = VendorMessage::parse(&bytes);
                        let from_api = from_the_api(&m);
                        let code = if m.code.is_empty() { format!("HTTP_{}", status.as_u16()) } else { m.code };
                        let fault = self.fault(Some(status.as_u16()), code, m.message);
                        let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST)
                            || (status == StatusCode::NOT_FOUND && from_api);
                        if refused {
                            self.http.credentials_refused(&fault.message);
                        }
                        return Err(match status {
                            // The operator fixes the tenant's credentials.
                            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => ProviderError::Credentials { fault },
                            // Alianza answers an unknown user 404 in its own error shape: a
                            // refusal of the login, not a wrong URL.
                            StatusCode::NOT_FOUND if from_api => ProviderError::Credentials { fault },
                            StatusCode::FORBIDDEN => ProviderError::Forbidden { fault },
                            // 404, 405, ...: whatever answered is not Alianza's login.
                            _ => ProviderError::VendorMisconfigured { fault, keys: API_URL_KEY },
                        });
                    }
                }
            };
            if !self.cfg.read_backoff.allows(attempt) || !retryable(&failure) {
                return Err(failure);
            }
            tokio::time::sleep(self.cfg.read_backoff.delay(attempt)).await;
        }
    }

    /// One API call whose JSON answer is `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        self: &Arc<Self>,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        kind: Kind,
    ) -> Result<T, CallError> {
        self.call_with(operation, method, url, body, kind, |bytes| {
            let bytes = bytes.ok_or("an answer larger than 4 MiB")?;
            // DELETE and some PATCHes answer 200 with no body.
            let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"null" } else { bytes };
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable JSON: {e}"))
        })
        .await
    }

    /// One API call: token, timeout, one re-login on 401, bounded retries for reads; a 2xx
    /// answer's body goes through `decode` (`None`: longer than [`MAX_BODY`]).
    pub(super) async fn call_with<T>(
        self: &Arc<Self>,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        kind: Kind,
        decode: impl Fn(Option<&[u8]>) -> Result<T, String>,
    ) -> Result<T, CallError> {
        let mut attempt = 0;
        let mut relogged = false;
        loop {
            attempt += 1;
            let token = self.token().await?;
            let mut req = self
                .http
                .client()
                .request(method.clone(), url.clone())
                .timeout(self.cfg.timeout)
                .header("X-AUTH-TOKEN", HeaderValue::clone(&token));
            if let Some(body) = &body {
                req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let failure = match self.http.exchange(operation, req, MAX_BODY).await {
                Err(e) => self.transport_error(&e, kind),
                Ok(Answer { status, body }) if status.is_success() => match decode(body.as_deref()) {
                    Ok(value) => return Ok(value),
                    Err(what) => self.unreadable(status, &what, kind),
                },
                Ok(Answer { status, body: None }) => self.unreadable(status, "an answer larger than 4 MiB", kind),
                Ok(Answer { status: StatusCode::UNAUTHORIZED, body: Some(bytes) }) => {
                    if !relogged {
                        // Expired (or revoked) token: the request was not processed; log in again, once.
                        relogged = true;
                        attempt -= 1;
                        self.invalidate(&token);
                        continue;
                    }
                    let m = VendorMessage::parse(&bytes);
                    let fault = self.fault(Some(401), m.code, m.message);
                    self.http.credentials_refused(&fault.message);
                    return Err(ProviderError::Credentials { fault }.into());
                }
                Ok(Answer { status: StatusCode::NOT_FOUND, body: Some(bytes) }) => {
                    return Err(CallError::NotFound(VendorMessage::parse(&bytes)));
                }
                Ok(Answer { status, body: Some(bytes) }) => self.status_error(status, &bytes, kind),
            };
            let may_retry = match kind {
                Kind::Read => retryable(&failure),
                // The connection was refused: Alianza never saw the request, so repeating it is safe.
                Kind::Mutation { .. } => {
                    matches!(&failure, ProviderError::Unavailable { fault, .. } if fault.code == "CONNECT")
                }
            };
            if !may_retry || !self.cfg.read_backoff.allows(attempt) {
                return Err(failure.into());
            }
            tracing::debug!(%method, path = url.path(), attempt, error = %failure, "retrying an Alianza call");
            tokio::time::sleep(self.cfg.read_backoff.delay(attempt)).await;
        }
    }

    /// An answer that cannot be read: for a read, a bad response (retried); for a change, an
    /// unknown outcome.
    pub(super) fn unreadable(&self, status: StatusCode, what: &str, kind: Kind) -> ProviderError {
        let fault = self.fault(Some(status.as_u16()), "BAD_RESPONSE", what);
        match kind {
            Kind::Read => ProviderError::BadResponse { fault },
            Kind::Mutation { check } => ProviderError::OutcomeUnknown { provider: PROVIDER, fault, check },
        }
    }

    /// An error answer other than 401 and 404.
    pub(super) fn status_error(&self, status: StatusCode, bytes: &[u8], kind: Kind) -> ProviderError {
        let m = VendorMessage::parse(bytes);
        let code = if m.code.is_empty() { format!("HTTP_{}", status.as_u16()) } else { m.code.clone() };
        let fault = self.fault(Some(status.as_u16()), code, m.message.clone());
        if status.is_server_error() {
            return match kind {
                Kind::Read => ProviderError::Unavailable { fault, retry_after: Duration::from_secs(2) },
                // A 5xx may come after the change was made (or half-made): nobody can tell.
                Kind::Mutation { check } => ProviderError::OutcomeUnknown { provider: PROVIDER, fault, check },
            };
        }
        match status {
            // Refused before processing: a later retry is safe, also for a change.
            StatusCode::TOO_MANY_REQUESTS => ProviderError::Unavailable { fault, retry_after: Duration::from_secs(2) },
            StatusCode::FORBIDDEN => ProviderError::Forbidden { fault },
            StatusCode::METHOD_NOT_ALLOWED => ProviderError::VendorMisconfigured { fault, keys: API_URL_KEY },
            _ => {
                let kind = if ACCOUNT_EXISTS_CODES.iter().any(|c| m.has(c)) {
                    Rejection::AlreadyExists
                } else {
                    Rejection::Invalid
                };
                ProviderError::Rejected { kind, fault }
            }
        }
    }

    pub(super) fn transport_error(&self, e: &reqwest::Error, kind: Kind) -> ProviderError {
        // A refused connection never carried the request (checked first: a connect timeout is
        // both); anything later might have.
        if e.is_connect() {
            let fault = self.fault(None, "CONNECT", "cannot connect");
            return ProviderError::Unavailable { fault, retry_after: Duration::from_secs(2) };
        }
        let (code, message, retry_after) = if e.is_timeout() {
            ("TIMEOUT", format!("no answer within {} ms", self.cfg.timeout.as_millis()), Duration::from_secs(5))
        } else {
            ("TRANSPORT", "the connection failed".to_owned(), Duration::from_secs(2))
        };
        let fault = self.fault(None, code, message);
        match kind {
            Kind::Read => ProviderError::Unavailable { fault, retry_after },
            Kind::Mutation { check } => ProviderError::OutcomeUnknown { provider: PROVIDER, fault, check },
        }
    }
}

/// What a read (or a login) retries: outages and unreadable answers.
pub(super) fn retryable(e: &ProviderError) -> bool {
    matches!(e, ProviderError::Unavailable { .. } | ProviderError::BadResponse { .. })
}
