//! Connections that send nothing for a while are closed.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never fires: a client that
//! sends half a request head and stops (slowloris) would hold its connection forever. Every
//! accepted connection gets a read timeout instead: when a read waits longer than
//! [`IDLE_READ_TIMEOUT`], the connection ends. Requests in progress are bounded separately by
//! `gateway.request_timeout`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;

/// How long a connection may send nothing: an unfinished request head, or an idle keep-alive.
pub const IDLE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with the idle read timeout.
pub type IdleTimeout<S> = Pin<Box<TimeoutStream<S>>>;

pub fn with_idle_timeout<S: AsyncRead + AsyncWrite>(stream: S) -> IdleTimeout<S> {
    let mut timed = TimeoutStream::new(stream);
    timed.set_read_timeout(Some(IDLE_READ_TIMEOUT));
    Box::pin(timed)
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
