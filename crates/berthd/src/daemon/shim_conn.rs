//! The daemon's end of a shim's control socket.

use berth_runtime::proto::{self, evt};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<Vec<u8>, String>>;

/// How long a command may wait for the shim's answer.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// What a request gets when the shim is gone.
const GONE: &str = "container is not running: its shim has exited";

/// A connection to one shim: commands go out under a lock, replies come back in order
/// through the monitor task that owns the read half.
pub struct ShimConn {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    /// Requests awaiting their reply, in order; `None` once the connection has closed, so no
    /// request ever waits for a reply that cannot come.
    pending: Mutex<Option<VecDeque<Reply>>>,
}

/// One frame read from a shim.
pub enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(proto::ExitInfo),
}

impl ShimConn {
    pub async fn connect(dir: &Path) -> std::io::Result<(Arc<ShimConn>, ShimReader)> {
        // Through an open handle on the directory: `/proc/self/fd/N/shim.sock` always fits in
        // sun_path's 108 bytes, whatever the length of the exec root.
        let handle = std::fs::File::open(dir)?;
        let short = format!(
            "/proc/self/fd/{}/shim.sock",
            std::os::fd::AsRawFd::as_raw_fd(&handle)
        );
        let s = tokio::net::UnixStream::connect(short).await;
        drop(handle);
        let (r, w) = s?.into_split();
        let conn = Arc::new(ShimConn {
            writer: tokio::sync::Mutex::new(w),
            pending: Mutex::new(Some(VecDeque::new())),
        });
        let reader = ShimReader {
            r,
            dec: proto::Decoder::default(),
            buf: vec![0; 64 * 1024],
            conn: conn.clone(),
        };
        Ok((conn, reader))
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Option<VecDeque<Reply>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a command that the shim answers, and waits for the answer.
    pub async fn request(&self, kind: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.writer.lock().await;
            match self.queue().as_mut() {
                Some(q) => q.push_back(tx),
                None => return Err(GONE.into()),
            }
            if let Err(e) = w.write_all(&proto::encode(kind, payload)).await {
                if let Some(q) = self.queue().as_mut() {
                    q.pop_back();
                }
                return Err(format!("shim connection: {e}"));
            }
        }
        match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Ok(r) => r.map_err(|_| GONE.to_string())?,
            Err(_) => Err("timed out waiting for the container's shim".into()),
        }
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
        let tx = self.queue().as_mut().and_then(|q| q.pop_front());
        if let Some(tx) = tx {
            let _ = tx.send(r);
        }
    }

    /// Fails every waiting and future request: the shim is gone.
    fn close(&self) {
        self.queue().take();
    }
}

/// The read half, driven by the container's monitor task.
pub struct ShimReader {
    r: OwnedReadHalf,
    dec: proto::Decoder,
    buf: Vec<u8>,
    conn: Arc<ShimConn>,
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
                    evt::EXIT => {
                        self.conn.close();
                        return serde_json::from_slice(&payload).ok().map(Event::Exit);
                    }
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
                    self.conn.close();
                    return None;
                }
            }
            match self.r.read(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    self.conn.close();
                    return None;
                }
                Ok(n) => self.dec.push(&self.buf[..n]),
            }
        }
    }
}
