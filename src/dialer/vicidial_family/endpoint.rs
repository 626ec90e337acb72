//! The `api_url` of a family tenant key: `simulator`, or the http(s) URL of the API script,
//! without what must never be in it (the same rules for every provider of the family).

use crate::registry::provider::{ValidateCtx, simulator_allowed};

/// Where the dialer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Simulator,
    Url(reqwest::Url),
}

/// Checks `api_url` (at the tenant key `api_url` of `ctx`); `example` is a URL of the provider's
/// script for the message. Diagnostics never quote the URL: it may hold a password.
pub fn validate(ctx: &mut ValidateCtx<'_>, api_url: &str, example: &str) -> Option<Endpoint> {
    match api_url.trim() {
        "simulator" => simulator_allowed(ctx, "api_url").then_some(Endpoint::Simulator),
        url => match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    ctx.problem(
                        "api_url",
                        "must not hold a user name or password (`user:pass@`): the dialer's API user goes in \
                         `username` and `password`, which are kept secret, while the URL is shown in messages",
                    );
                    None
                } else if u.query().is_some() || u.fragment().is_some() {
                    ctx.problem(
                        "api_url",
                        "must not have a query string or fragment (`?...`, `#...`): the dialer reads its \
                         parameters from the query string first, so they would override patchbay's",
                    );
                    None
                } else {
                    Some(Endpoint::Url(u))
                }
            }
            _ => {
                ctx.problem(
                    "api_url",
                    format!("must be `simulator` or the http(s) URL of the dialer's API script, e.g. {example}"),
                );
                None
            }
        },
    }
}
