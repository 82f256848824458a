//! Connections [`super::PusherFake`]'s server can close without answering (a reset, as a
//! crashed or overloaded server does).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Identifies a connection to the handler, so it can close it without an answer; counts the
/// requests it carried.
#[derive(Clone, Debug)]
pub(super) struct ConnHandle(
    pub(super) Arc<AtomicBool>,
    pub(super) Arc<AtomicUsize>,
    pub(super) usize,
);

impl Connected<IncomingStream<'_, FakeListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, FakeListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The listener, and the number of the next connection.
pub(super) struct FakeListener(pub(super) TcpListener, pub(super) usize);

impl axum::serve::Listener for FakeListener {
    type Io = KillableIo;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (KillableIo, ConnHandle) {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let killed = Arc::new(AtomicBool::new(false));
                    let id = self.1;
                    self.1 += 1;
                    return (
                        KillableIo {
                            inner: stream,
                            killed: killed.clone(),
                        },
                        ConnHandle(killed, Arc::new(AtomicUsize::new(0)), id),
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<ConnHandle> {
        Ok(ConnHandle(
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            usize::MAX,
        ))
    }
}

/// A TCP stream that fails every read and write once killed, so the server drops the
/// connection instead of writing the answer.
pub(super) struct KillableIo {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableIo {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "closed by the fake",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
