//! Docker's `json-file` log format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-22T23:00:00.000000000Z"}`, rotated at a
//! size limit into `<file>.1 … <file>.N` (`.1` the newest rotated file).

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Lines longer than this are split into several entries, as dockerd does.
const MAX_LINE: usize = 16 * 1024;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends entries to a json-file log, splitting output into lines and rotating by size.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    partial: [Vec<u8>; 2],
}

/// RFC 3339 with nanoseconds in UTC, the form Docker writes.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl LogWriter {
    /// Opens (appending) the log at `path`; `max_size` 0 disables rotation.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Adds output of `stream` (0 stdout, 1 stderr); whole lines are written at once, the
    /// unterminated remainder is kept until its newline or [`LogWriter::flush_partial`].
    pub fn write(&mut self, stream: usize, data: &[u8]) -> std::io::Result<()> {
        self.partial[stream].extend_from_slice(data);
        loop {
            let buf = &self.partial[stream];
            let cut = match buf.iter().position(|&b| b == b'\n') {
                Some(i) if i < MAX_LINE => i + 1,
                _ if buf.len() >= MAX_LINE => MAX_LINE,
                _ => break,
            };
            let line: Vec<u8> = self.partial[stream].drain(..cut).collect();
            self.entry(stream, &line)?;
        }
        Ok(())
    }

    /// Writes out whatever unterminated output is pending (at the end of the stream).
    pub fn flush_partial(&mut self) -> std::io::Result<()> {
        for s in 0..2 {
            if !self.partial[s].is_empty() {
                let line = std::mem::take(&mut self.partial[s]);
                self.entry(s, &line)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, stream: usize, line: &[u8]) -> std::io::Result<()> {
        let e = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.to_string(),
            time: now_rfc3339(),
        };
        let mut bytes = serde_json::to_vec(&e).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if self.max_size > 0 && self.size + bytes.len() as u64 > self.max_size && self.size > 0 {
            self.rotate()?;
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let n = self.max_files - 1;
        if n == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(rotated(&self.path, n));
        for i in (1..n).rev() {
            let from = rotated(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// The log's files, oldest first: `.N … .1`, then the live file.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut i = 1;
    while rotated(path, i).exists() {
        files.push(rotated(path, i));
        i += 1;
    }
    files.reverse();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Reads every entry of the log (all rotated files, oldest first); bad lines are skipped.
pub fn read_all(path: &Path) -> std::io::Result<Vec<LogEntry>> {
    let mut out = Vec::new();
    for f in log_files(path) {
        let r = BufReader::new(File::open(&f)?);
        for line in r.lines() {
            if let Ok(e) = serde_json::from_str::<LogEntry>(&line?) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_partials_and_rotation() {
        let dir = std::env::temp_dir().join(format!("berth-jsonlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c-json.log");
        let mut w = LogWriter::open(&path, 400, 3).unwrap();
        w.write(0, b"hel").unwrap();
        w.write(0, b"lo\nwor").unwrap();
        w.write(1, b"err\n").unwrap();
        w.flush_partial().unwrap();
        let all = read_all(&path).unwrap();
        let logs: Vec<_> = all
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect();
        assert_eq!(
            logs,
            vec![
                ("stdout", "hello\n"),
                ("stderr", "err\n"),
                ("stdout", "wor")
            ]
        );
        for i in 0..40 {
            w.write(0, format!("line {i}\n").as_bytes()).unwrap();
        }
        let files = log_files(&path);
        assert_eq!(
            files.len(),
            3,
            "rotated into .1 and .2 beside the live file"
        );
        let all = read_all(&path).unwrap();
        assert_eq!(all.last().unwrap().log, "line 39\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_lines_are_split() {
        let dir = std::env::temp_dir().join(format!("berth-jsonlog-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c-json.log");
        let mut w = LogWriter::open(&path, 0, 1).unwrap();
        w.write(0, &vec![b'a'; MAX_LINE + 10]).unwrap();
        w.write(0, b"\n").unwrap();
        let all = read_all(&path).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].log.len(), MAX_LINE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
