//! What the VICIdial family of dialers shares on the wire: stock VICIdial's non-agent API and
//! its derivatives (Elision). Their admin functions answer the same text lines, echo the same
//! secrets and strip the same characters, so one reading of them serves every provider of the
//! family: each vendor folder (`elision/`, `vicidial/`) keeps only its own transport,
//! functions and JSON, and imports this.
//!
//! - [`answer`]: the text answer lines, both separator forms, login results, and what a reason means;
//! - [`scrub`]: removing echoed secrets from answers, in every encoding the family uses;
//! - [`endpoint`]: the `api_url` tenant key's rules;
//! - [`fields`]: the characters the family silently strips, checked before a call;
//! - [`params`]: the parameters of its user functions;
//! - [`transport`]: the form POST every call is, what a call without a usable answer becomes,
//!   and the stop after a refused login that keeps patchbay from locking the API user out.

pub mod answer;
pub mod endpoint;
pub mod fields;
pub mod params;
pub mod scrub;
pub mod transport;
