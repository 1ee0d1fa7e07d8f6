//! `POST /containers/{id}/attach`: after the HTTP connection is hijacked, the container's output
//! is streamed to the client (8-byte multiplexed frames, or raw with a TTY) and the client's
//! bytes go to the container's stdin.

use super::{Container, Daemon, Output};
use berth_api::stream::{frame, StdStream};
use berth_runtime::proto::cmd;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;

/// Which streams the client asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub stream: bool,
    pub logs: bool,
}

/// Encodes one chunk of output for the client.
fn encode(tty: bool, stream: StdStream, data: &[u8]) -> Vec<u8> {
    if tty {
        data.to_vec()
    } else {
        frame(stream, data)
    }
}

impl Daemon {
    /// Serves a hijacked attach connection. `rx` was subscribed before the upgrade response was
    /// sent, so output produced by a start that follows cannot be missed.
    pub async fn attach_io<IO>(
        self: Arc<Self>,
        c: Arc<Container>,
        mut rx: broadcast::Receiver<Output>,
        io: IO,
        opts: AttachOpts,
    ) where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let rec = c.snapshot();
        let tty = rec.config.tty;
        let (mut rd, mut wr) = tokio::io::split(io);
        if opts.logs {
            let path = self.paths.log_path(&rec.id);
            if let Ok(Ok(entries)) =
                tokio::task::spawn_blocking(move || berth_runtime::jsonlog::read_all(&path)).await
            {
                for e in entries {
                    let s = if e.stream == "stderr" {
                        StdStream::Stderr
                    } else {
                        StdStream::Stdout
                    };
                    if (s == StdStream::Stdout && !opts.stdout)
                        || (s == StdStream::Stderr && !opts.stderr)
                    {
                        continue;
                    }
                    if wr
                        .write_all(&encode(tty, s, e.log.as_bytes()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        if !opts.stream {
            let _ = wr.shutdown().await;
            return;
        }
        let stdin_task = if opts.stdin && rec.config.open_stdin {
            let c = c.clone();
            let stdin_once = rec.config.stdin_once;
            Some(tokio::spawn(async move {
                // Stdin may arrive before the container is started: wait for its shim.
                let mut life = c.life.subscribe();
                if life.wait_for(|l| l.running).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    let n = match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => 0,
                        Ok(n) => n,
                    };
                    let Some(shim) = c.shim() else { return };
                    if n == 0 {
                        if stdin_once || !tty {
                            let _ = shim.send(cmd::CLOSE_STDIN, &[]).await;
                        }
                        return;
                    }
                    if shim.send(cmd::STDIN, &buf[..n]).await.is_err() {
                        return;
                    }
                }
            }))
        } else {
            None
        };
        loop {
            let out = match rx.recv().await {
                Ok(o) => o,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "attach client too slow; output dropped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let bytes = match out {
                Output::End => break,
                Output::Stdout(b) if opts.stdout => encode(tty, StdStream::Stdout, &b),
                Output::Stderr(b) if opts.stderr => encode(tty, StdStream::Stderr, &b),
                _ => continue,
            };
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
        if let Some(t) = stdin_task {
            t.abort();
        }
    }
}
