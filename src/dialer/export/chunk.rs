//! Cutting the lead stream into chunks that respect the vendor's limits ([`ExportShape`]):
//! leads and bytes per call. Leads refused by patchbay's checks ride along, costing no call.

use crate::dialer::provider::{ExportShape, Lead};

/// A lead on its way: to be sent, or already refused by patchbay's checks.
#[derive(Debug)]
pub(super) enum Item {
    Send { idx: i32, lead: Lead },
    Reject { idx: i32, phone: String, error: String },
}

impl Item {
    pub(super) fn idx(&self) -> i32 {
        match self {
            Self::Send { idx, .. } | Self::Reject { idx, .. } => *idx,
        }
    }

    pub(super) fn phone(&self) -> &str {
        match self {
            Self::Send { lead, .. } => &lead.phone_number,
            Self::Reject { phone, .. } => phone,
        }
    }
}

/// A run of consecutive leads whose valid ones fit one vendor call.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) items: Vec<Item>,
}

/// Cuts the lead stream into chunks that respect the vendor's limits.
pub(super) struct Chunker {
    shape: ExportShape,
    items: Vec<Item>,
    sending: usize,
    bytes: usize,
}

impl Chunker {
    pub(super) fn new(shape: ExportShape) -> Self {
        Self { shape, items: Vec::new(), sending: 0, bytes: 0 }
    }

    /// Adds a lead (`size`: its bytes in a call, for one to send); returns a full chunk if one closed.
    pub(super) fn push(&mut self, item: Item, size: usize) -> Option<Chunk> {
        let mut closed = None;
        if matches!(item, Item::Send { .. }) {
            if self.sending == self.shape.max_leads_per_call || self.bytes + size > self.shape.max_bytes_per_call {
                closed = self.take();
            }
            self.sending += 1;
            self.bytes += size;
        }
        self.items.push(item);
        // Refused leads cost no call, but a chunk of them must not grow without bound either.
        if closed.is_none() && self.items.len() >= self.shape.max_leads_per_call * 4 {
            closed = self.take();
        }
        closed
    }

    pub(super) fn take(&mut self) -> Option<Chunk> {
        self.sending = 0;
        self.bytes = 0;
        (!self.items.is_empty()).then(|| Chunk { items: std::mem::take(&mut self.items) })
    }
}
