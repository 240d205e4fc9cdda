//! Accepting connections with TCP_NODELAY. tonic's `serve_with_incoming` leaves Nagle on,
//! and a small unary call on loopback then waits for the delayed ACK (about 770 µs
//! instead of about 90 µs), so every accepted socket goes through here.

use std::io;
use std::time::Duration;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};

/// Accepted sockets with TCP_NODELAY set. Accept errors (too many open files, a
/// connection reset before accept) are logged and skipped, never fatal.
pub fn nodelay_incoming(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                    }
                    return Some((Ok(stream), listener));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}
