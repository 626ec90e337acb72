//! What the VICIdial family of dialers shares on the wire: stock VICIdial's non-agent API and
//! its derivatives (Elision). Their admin functions answer the same text lines, echo the same
//! secrets and strip the same characters, so one reading of them serves every provider of the
//! family: each vendor folder (`elision/`, next `vicidial/`) keeps only its own transport,
//! functions and JSON, and imports this.
//!
//! - [`answer`]: the text answer lines, both separator forms, login results, and what a reason means;
//! - [`scrub`]: removing echoed secrets from answers, in every encoding the family uses;
//! - [`fields`]: the characters the family silently strips, checked before a call.

pub mod answer;
pub mod fields;
pub mod scrub;
