//! The daemon's end of a shim's control socket.

use berth_runtime::proto::{self, evt};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<Vec<u8>, String>>;

/// A connection to one shim: commands go out under a lock, replies come back in order
/// through the monitor task that owns the read half.
pub struct ShimConn {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Mutex<VecDeque<Reply>>,
}

/// One frame read from a shim.
pub enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(proto::ExitInfo),
}

impl ShimConn {
    pub async fn connect(dir: &Path) -> std::io::Result<(std::sync::Arc<ShimConn>, ShimReader)> {
        // Through an open handle on the directory: `/proc/self/fd/N/shim.sock` always fits in
        // sun_path's 108 bytes, whatever the length of the exec root.
        let handle = std::fs::File::open(dir)?;
        let short = format!(
            "/proc/self/fd/{}/shim.sock",
            std::os::fd::AsRawFd::as_raw_fd(&handle)
        );
        let s = tokio::net::UnixStream::connect(short).await;
        drop(handle);
        let s = s?;
        let (r, w) = s.into_split();
        let conn = std::sync::Arc::new(ShimConn {
            writer: tokio::sync::Mutex::new(w),
            pending: Mutex::new(VecDeque::new()),
        });
        Ok((
            conn.clone(),
            ShimReader {
                r,
                dec: proto::Decoder::default(),
                buf: vec![0; 64 * 1024],
                conn,
            },
        ))
    }

    /// Sends a command that the shim answers, and waits for the answer.
    pub async fn request(&self, kind: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.writer.lock().await;
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(tx);
            if let Err(e) = w.write_all(&proto::encode(kind, payload)).await {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_back();
                return Err(format!("shim connection: {e}"));
            }
        }
        rx.await.map_err(|_| "shim connection closed".to_string())?
    }

    /// Sends a command that gets no answer (stdin).
    pub async fn send(&self, kind: u8, payload: &[u8]) -> std::io::Result<()> {
        self.writer
            .lock()
            .await
            .write_all(&proto::encode(kind, payload))
            .await
    }

    fn answer(&self, r: Result<Vec<u8>, String>) {
        if let Some(tx) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        {
            let _ = tx.send(r);
        }
    }
}

/// The read half, driven by the container's monitor task.
pub struct ShimReader {
    r: OwnedReadHalf,
    dec: proto::Decoder,
    buf: Vec<u8>,
    conn: std::sync::Arc<ShimConn>,
}

impl ShimReader {
    /// The next output or exit event; replies are routed to their requests on the way.
    /// `None` when the connection ends without an exit.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.dec.next_frame() {
                Ok(Some((kind, payload))) => match kind {
                    evt::STDOUT => return Some(Event::Stdout(payload)),
                    evt::STDERR => return Some(Event::Stderr(payload)),
                    evt::EXIT => return serde_json::from_slice(&payload).ok().map(Event::Exit),
                    evt::REPLY => {
                        let r = if payload.is_empty() {
                            Ok(Vec::new())
                        } else {
                            Err(String::from_utf8_lossy(&payload).into_owned())
                        };
                        self.conn.answer(r);
                    }
                    evt::STATE => self.conn.answer(Ok(payload)),
                    _ => {}
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "bad frame from shim");
                    return None;
                }
            }
            match self.r.read(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.dec.push(&self.buf[..n]),
            }
        }
    }
}
