//! An export's target: an existing list, or one to create first.

use sha2::{Digest, Sha256};

use crate::{
    dialer::{
        provider::{DialList, FieldRules},
        validate,
    },
    ops::{ApiError, Violations},
};

/// Where the leads go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A list the dialer reports as active.
    Existing(String),
    /// A list to create first.
    New(DialList),
}

impl Target {
    pub(super) fn list_id(&self) -> &str {
        match self {
            Self::Existing(id) => id,
            Self::New(l) => &l.list_id,
        }
    }

    /// Identifies the target, so that a request_id reused for another target is caught.
    pub(super) fn digest(&self) -> Vec<u8> {
        let text = match self {
            Self::Existing(id) => format!("existing\0{id}"),
            Self::New(l) => format!("new\0{}\0{}\0{}\0{}", l.list_id, l.name, l.campaign_id, l.active),
        };
        Sha256::digest(text.as_bytes()).to_vec()
    }

    /// The field rules of the target.
    pub fn validate(&self, rules: &FieldRules) -> Result<(), ApiError> {
        match self {
            Self::Existing(id) => validate::list_id("target.existing_list_id", id),
            Self::New(list) => {
                let mut v = Violations::new();
                validate::list_into(&mut v, "target.new_list", list, rules);
                v.into_result()
            }
        }
    }
}
