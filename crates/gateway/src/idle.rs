//! Connections that send nothing for a while are closed.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never fires: a client that
//! sends half a request head and stops (slowloris) would hold its connection forever. Every
//! accepted connection gets a read timeout instead: when a read waits longer than
//! [`IDLE_READ_TIMEOUT`], the connection ends. Requests in progress are bounded separately by
//! `gateway.request_timeout`.
//!
//! The timer is armed lazily: a wait for the next read only notes when it began, and the one timer
//! of a connection is moved (re-registered with the runtime's timer wheel) only when it fires before
//! the current wait has lasted the timeout. A busy keep-alive connection therefore touches the timer
//! wheel about once per timeout, not once per request: re-arming a timer per read takes the wheel's
//! lock and often wakes the thread parked on it, which under load cost more CPU than the timer
//! itself.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// How long a connection may send nothing: an unfinished request head, or an idle keep-alive.
pub const IDLE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection whose reads fail with [`io::ErrorKind::TimedOut`] once one has waited longer than
/// its timeout for data.
#[derive(Debug)]
pub struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    /// When the current wait for data began; `None` while no read is waiting.
    waiting_since: Option<Instant>,
    /// Fires at or before the end of the current wait's allowance, never after it.
    timer: Pin<Box<Sleep>>,
}

pub fn with_idle_timeout<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> IdleTimeout<S> {
    IdleTimeout::new(stream, IDLE_READ_TIMEOUT)
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, timeout: Duration) -> IdleTimeout<S> {
        // Every wait begins after now, so its allowance ends after this first deadline.
        IdleTimeout { inner, timeout, waiting_since: None, timer: Box::pin(tokio::time::sleep(timeout)) }
    }

    /// Called when a read is waiting: `Ready` once this wait has lasted the timeout.
    fn poll_waited_too_long(&mut self, context: &mut Context<'_>) -> Poll<()> {
        let deadline = *self.waiting_since.get_or_insert_with(Instant::now) + self.timeout;
        loop {
            ready!(self.timer.as_mut().poll(context));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            // Armed for an earlier wait: move it to this one's deadline (at most once per timeout).
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(context, buffer) {
            Poll::Ready(result) => {
                this.waiting_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                ready!(this.poll_waited_too_long(context));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data within the idle read timeout",
                )))
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}

/// A plain TCP listener whose connections have the idle read timeout.
#[derive(Debug)]
pub struct PlainListener(pub TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = IdleTimeout<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.0).await;
        // No waiting for the client's delayed ACK before an answer goes out.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        (with_idle_timeout(stream), address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_read_that_waits_longer_than_the_timeout_fails_and_not_before() {
        let (mut client, server) = duplex(64);
        let mut server = IdleTimeout::new(server, TIMEOUT);
        let started = Instant::now();
        let mut buffer = [0u8; 16];
        let error = server.read(&mut buffer).await.expect_err("nothing was sent");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT);
        // The client can still write; it is the server's read that gave up.
        client.write_all(b"late").await.expect("the pipe is open");
    }

    #[tokio::test(start_paused = true)]
    async fn data_within_the_timeout_keeps_the_connection_however_long_it_lives() {
        let (mut client, server) = duplex(64);
        let mut server = IdleTimeout::new(server, TIMEOUT);
        let mut buffer = [0u8; 16];
        // 50 s of traffic, a byte every 7 s: every wait is shorter than the timeout, though the
        // connection outlives it five times.
        for round in 0..7u8 {
            let writer = async {
                tokio::time::sleep(Duration::from_secs(7)).await;
                client.write_all(&[round]).await.expect("write");
            };
            let (read, ()) = tokio::join!(server.read(&mut buffer), writer);
            assert_eq!(read.expect("data arrived in time"), 1);
            assert_eq!(buffer[0], round);
        }
        // Then silence: the wait that begins now, not the connection's age, is what times out.
        let waiting = Instant::now();
        let error = server.read(&mut buffer).await.expect_err("silence");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(waiting.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn time_between_reads_is_not_waiting() {
        let (mut client, server) = duplex(64);
        let mut server = IdleTimeout::new(server, TIMEOUT);
        let mut buffer = [0u8; 16];
        client.write_all(b"a").await.expect("write");
        assert_eq!(server.read(&mut buffer).await.expect("read"), 1);
        // A request being handled: nothing reads for longer than the timeout.
        tokio::time::sleep(TIMEOUT * 2).await;
        let writer = async {
            tokio::time::sleep(TIMEOUT - Duration::from_secs(1)).await;
            client.write_all(b"b").await.expect("write");
        };
        let (read, ()) = tokio::join!(server.read(&mut buffer), writer);
        assert_eq!(read.expect("the next request came within the timeout of the wait"), 1);
    }
}
