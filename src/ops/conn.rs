//! Connections held within bounds: each listener accepts at most a set number of connections at
//! once (the next waits in the kernel's backlog until one closes, and a warning says the cap was
//! reached), and an HTTP connection that sends and receives nothing for a while is closed. So
//! idle or slow clients of one listener can neither exhaust the process's file descriptors nor
//! take the other listeners (health, gRPC) down with them.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

/// A listener's connection slots, and when its cap was last reported.
#[derive(Debug, Clone)]
pub struct Slots {
    what: &'static str,
    cap: usize,
    free: Arc<Semaphore>,
    warned_at: Arc<AtomicU64>,
}

impl Slots {
    /// `cap` connections at once on the listener named `what` (`grpc`, `http`, `ops`).
    pub fn new(what: &'static str, cap: usize) -> Self {
        Self { what, cap: cap.max(1), free: Arc::new(Semaphore::new(cap.max(1))), warned_at: Arc::default() }
    }

    /// A slot for the next connection, waiting while all are taken (warning at most every 10 s).
    pub async fn take(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = Arc::clone(&self.free).try_acquire_owned() {
            return permit;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now.saturating_sub(self.warned_at.swap(now, Ordering::Relaxed)) >= 10 {
            tracing::warn!(
                listener = self.what,
                cap = self.cap,
                "the listener is at its connection cap; new connections wait until one closes"
            );
        }
        Arc::clone(&self.free).acquire_owned().await.expect("the semaphore is never closed")
    }
}

/// A connection that holds its slot until it is dropped, and (with an idle limit) fails its
/// pending read once nothing has been read or written for that long, so that the server closes it.
pub struct Limited<IO> {
    inner: IO,
    _slot: OwnedSemaphorePermit,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl<IO> Limited<IO> {
    pub fn new(inner: IO, slot: OwnedSemaphorePermit, idle: Option<Duration>) -> Self {
        Self { inner, _slot: slot, idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))) }
    }

    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    fn active(&mut self) {
        if let Some((d, sleep)) = &mut self.idle {
            sleep.as_mut().reset(Instant::now() + *d);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if let Some((d, sleep)) = &mut self.idle
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    let why = format!("idle for {} s: closed", d.as_secs());
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.active();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// An `axum::serve` listener whose connections are [`Limited`].
pub struct LimitedListener<L> {
    inner: L,
    slots: Slots,
    idle: Option<Duration>,
}

impl<L> LimitedListener<L> {
    pub fn new(inner: L, slots: Slots, idle: Option<Duration>) -> Self {
        Self { inner, slots, idle }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for LimitedListener<L>
where
    L::Io: Unpin,
{
    type Io = Limited<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let slot = self.slots.take().await;
        let (io, addr) = self.inner.accept().await;
        (Limited::new(io, slot, self.idle), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A server's incoming connections, each [`Limited`] (no idle limit: a gRPC stream may rightly
/// stay quiet for long; HTTP/2 keepalive finds dead peers instead).
pub fn limited_incoming<S, IO>(incoming: S, slots: Slots) -> impl futures::Stream<Item = io::Result<Limited<IO>>>
where
    S: futures::Stream<Item = io::Result<IO>> + Unpin,
{
    use futures::StreamExt;
    futures::stream::unfold((incoming, slots), |(mut incoming, slots)| async move {
        let slot = slots.take().await;
        let next = incoming.next().await?;
        Some((next.map(|io| Limited::new(io, slot, None)), (incoming, slots)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_idle_connection_fails_its_read_and_an_active_one_does_not() {
        let slots = Slots::new("test", 1);
        let (a, mut b) = tokio::io::duplex(64);
        let mut conn = Limited::new(a, slots.take().await, Some(Duration::from_millis(200)));
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        conn.read_exact(&mut buf).await.unwrap();
        let started = std::time::Instant::now();
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_connection_holds_its_slot_until_dropped() {
        let slots = Slots::new("test", 1);
        let (a, _b) = tokio::io::duplex(64);
        let conn = Limited::new(a, slots.take().await, None);
        assert!(tokio::time::timeout(Duration::from_millis(50), slots.take()).await.is_err(), "the cap holds");
        drop(conn);
        let _slot = tokio::time::timeout(Duration::from_millis(50), slots.take()).await.expect("a slot is free again");
    }
}
