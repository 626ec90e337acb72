//! What one call carries in and out: its parameters, read as the script reads them (PHP's
//! `$_GET` / `$_POST`), and its answer.

use std::collections::HashMap;

use axum::{
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::strip;

/// PHP's `max_input_vars` (default 1000): variables beyond it are dropped, per source.
const MAX_INPUT_VARS: usize = 1000;

/// The request's parameters: each from the query string if present there (even empty), else
/// from a form body, as the script reads them (`isset($_GET[x])`, then `$_POST[x]`).
#[derive(Debug, Default)]
pub(super) struct Params {
    raw: HashMap<String, String>,
}

impl Params {
    pub fn parse(method: &Method, headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Self {
        let mut raw = HashMap::new();
        // PHP fills $_POST only for a POST with a form content type (multipart is not simulated).
        if method == Method::POST && is_form(headers) {
            raw.extend(decode_form(&String::from_utf8_lossy(body)));
        }
        raw.extend(decode_form(query.unwrap_or_default()));
        Self { raw }
    }

    /// The value as sent (after URL decoding), empty when absent.
    pub fn raw(&self, name: &str) -> &str {
        self.raw.get(name).map(String::as_str).unwrap_or_default()
    }

    /// The value as the dialer sees it: stripped by the rules for `name`.
    pub fn get(&self, name: &str) -> String {
        strip::field(name, self.raw(name))
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self { raw: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// `a=1&b=x+y&b=z` → pairs in order, so a later repeat of a name overwrites an earlier one.
fn decode_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (url_decode(name), url_decode(value)),
            None => (url_decode(pair), String::new()),
        })
        .filter(|(name, _)| !name.is_empty())
        .take(MAX_INPUT_VARS)
        .collect()
}

/// PHP's `urldecode`: `+` is a space, `%XX` a byte; a malformed `%` stays as it is.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// One answer of the script: always HTTP 200 text lines, except the coffee joke's 418.
#[derive(Debug)]
pub(super) struct Answer {
    status: StatusCode,
    body: String,
}

impl Answer {
    pub fn text(body: String) -> Self {
        Self { status: StatusCode::OK, body }
    }

    pub fn teapot(function: &str) -> Self {
        Self { status: StatusCode::IM_A_TEAPOT, body: format!("Coffee: {function}|Error 418 I'm a teapot") }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_a_space_and_percent_2b_a_plus() {
        assert_eq!(url_decode("a+b%2Bc%20d"), "a b+c d");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(url_decode("%C3%A9"), "é");
    }

    #[test]
    fn the_query_string_wins_even_when_empty_and_the_last_repeat_wins() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        let p = Params::parse(&Method::POST, &headers, Some("source=&user=a&user=b"), b"source=body&pass=x&flag");
        assert_eq!(p.raw("source"), "");
        assert_eq!(p.raw("user"), "b");
        assert_eq!(p.raw("pass"), "x");
        assert_eq!(p.raw("flag"), "");
    }

    #[test]
    fn a_body_without_a_form_content_type_is_not_read() {
        let p = Params::parse(&Method::POST, &HeaderMap::new(), None, b"user=a");
        assert_eq!(p.raw("user"), "");
        let p = Params::parse(&Method::GET, &HeaderMap::new(), None, b"user=a");
        assert_eq!(p.raw("user"), "");
    }
}
