//! `GET /containers/{id}/logs`: reads the json-file log, filtered and tailed, and follows it
//! (like `tail -F`, across rotations) while the container runs.

use super::{Container, Daemon};
use berth_api::stream::{frame, StdStream};
use berth_runtime::jsonlog::{log_files, LogEntry};
use bytes::Bytes;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the client asked of the log.
#[derive(Debug, Clone, Default)]
pub struct LogsOpts {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Unix time in seconds (fractional); 0 = no bound.
    pub since: f64,
    pub until: f64,
    pub timestamps: bool,
    /// `None` = all lines.
    pub tail: Option<usize>,
}

/// Parses Docker's `since`/`until` query values: unix seconds with optional fraction.
pub fn parse_time(s: Option<&str>) -> Result<f64, String> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(0.0),
        Some(s) => {
            if let Ok(v) = s.parse::<f64>() {
                return Ok(v);
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.timestamp() as f64 + d.timestamp_subsec_nanos() as f64 / 1e9)
                .map_err(|_| format!("invalid value for time: {s}"))
        }
    }
}

fn entry_time(e: &LogEntry) -> f64 {
    chrono::DateTime::parse_from_rfc3339(&e.time)
        .map(|d| d.timestamp() as f64 + d.timestamp_subsec_nanos() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// Reads whole lines of `path` from `offset`; returns the entries and the new offset.
fn read_from(path: &Path, offset: u64) -> (Vec<LogEntry>, u64) {
    let mut out = Vec::new();
    let Ok(mut f) = std::fs::File::open(path) else {
        return (out, offset);
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return (out, offset);
    }
    let mut r = std::io::BufReader::new(f.by_ref());
    let mut pos = offset;
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !line.ends_with('\n') {
                    break; // a line still being written
                }
                pos += n as u64;
                if let Ok(e) = serde_json::from_str::<LogEntry>(&line) {
                    out.push(e);
                }
            }
        }
    }
    (out, pos)
}

fn inode(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.ino())
}

impl LogsOpts {
    fn wants(&self, e: &LogEntry) -> bool {
        let stream_ok = if e.stream == "stderr" {
            self.stderr
        } else {
            self.stdout
        };
        if !stream_ok {
            return false;
        }
        let t = entry_time(e);
        (self.since == 0.0 || t >= self.since) && (self.until == 0.0 || t <= self.until)
    }

    fn encode(&self, tty: bool, e: &LogEntry) -> Bytes {
        let mut text = Vec::new();
        if self.timestamps {
            text.extend_from_slice(e.time.as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(e.log.as_bytes());
        if tty {
            Bytes::from(text)
        } else {
            let s = if e.stream == "stderr" {
                StdStream::Stderr
            } else {
                StdStream::Stdout
            };
            Bytes::from(frame(s, &text))
        }
    }
}

impl Daemon {
    /// Streams the log as chunks of the response body.
    pub fn logs(self: &Arc<Self>, c: &Arc<Container>, opts: LogsOpts) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(64);
        let rec = c.snapshot();
        let path = self.paths.log_path(&rec.id);
        let tty = rec.config.tty;
        let c = c.clone();
        tokio::spawn(async move {
            let (initial, mut offset, mut ino) = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let mut all = Vec::new();
                    let files = log_files(&path);
                    let mut offset = 0;
                    for f in &files {
                        if *f == path {
                            let (e, o) = read_from(f, 0);
                            all.extend(e);
                            offset = o;
                        } else {
                            all.extend(read_from(f, 0).0);
                        }
                    }
                    (all, offset, inode(&path))
                })
                .await
                .unwrap_or_default()
            };
            let mut selected: Vec<&LogEntry> = initial.iter().filter(|e| opts.wants(e)).collect();
            if let Some(n) = opts.tail {
                let skip = selected.len().saturating_sub(n);
                selected.drain(..skip);
            }
            for e in selected {
                if tx.send(opts.encode(tty, e)).await.is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            let mut life = c.life.subscribe();
            loop {
                let running = life.borrow().running;
                let p: PathBuf = path.clone();
                let (entries, new_off, new_ino) = tokio::task::spawn_blocking(move || {
                    let now = inode(&p);
                    if now.is_some() && now != ino {
                        // Rotated: finish the old file (now `.1`), then start the new one.
                        let mut rotated = p.as_os_str().to_owned();
                        rotated.push(".1");
                        let (mut e, _) = read_from(Path::new(&rotated), offset);
                        let (e2, o2) = read_from(&p, 0);
                        e.extend(e2);
                        (e, o2, now)
                    } else {
                        let (e, o) = read_from(&p, offset);
                        (e, o, ino)
                    }
                })
                .await
                .unwrap_or_default();
                offset = new_off;
                ino = new_ino;
                for e in entries.iter().filter(|e| opts.wants(e)) {
                    if tx.send(opts.encode(tty, e)).await.is_err() {
                        return;
                    }
                }
                if !running
                    || (opts.until > 0.0 && chrono::Utc::now().timestamp() as f64 > opts.until)
                {
                    return;
                }
                tokio::select! {
                    _ = life.changed() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time(None).unwrap(), 0.0);
        assert_eq!(parse_time(Some("1700000000.5")).unwrap(), 1700000000.5);
        assert_eq!(parse_time(Some("1970-01-01T00:00:10Z")).unwrap(), 10.0);
        assert!(parse_time(Some("yesterday")).is_err());
    }
}
