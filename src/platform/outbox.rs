//! The local webhook delivery worker's doorbell, kept in [`super::AppState`]: rung after a commit
//! to the outbox (`platform::events`), so that the worker sends at once instead of at its next poll.

use std::sync::Arc;

/// The doorbell.
#[derive(Clone, Default)]
pub struct Outbox(Arc<tokio::sync::Notify>);

impl Outbox {
    /// Something was committed to the outbox: deliver it now.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Waits for [`Outbox::wake`].
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}
