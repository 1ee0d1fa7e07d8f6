//! Display of the daemon's JSON message streams (pull, push, load, import, build), with the
//! behaviour of docker's `DisplayJSONMessagesStream`:
//!
//! - on a terminal, every message with an `id` and progress gets one line that later messages
//!   with that `id` rewrite in place (cursor up, erase, rewrite, cursor down), with a bar drawn
//!   from `progressDetail`;
//! - without a terminal, one line per status change and no bars (messages whose only news is
//!   progress are dropped);
//! - a message without progress ends the in-place block, so later ids start below it;
//! - `stream` text is written as it is, `aux` is handed to the caller, and `error` /
//!   `errorDetail` ends the stream as the command's error.

use crate::client::{next_chunk, JsonLines};
use crate::CliError;
use serde_json::Value;
use std::io::Write;

/// Bars are drawn only when the terminal is wider than this (docker's rule).
const BAR_MIN_WIDTH: usize = 110;
/// The estimated time left is shown only when the terminal is wider than this.
const ETA_MIN_WIDTH: usize = 50;
/// The width assumed when the terminal's cannot be read.
const DEFAULT_WIDTH: usize = 200;

/// A message's `progressDetail`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Detail<'a> {
    pub current: i64,
    pub total: i64,
    /// Unix seconds when the transfer started; enables the time-left estimate.
    pub start: i64,
    /// Unit name for counts that are not bytes.
    pub units: &'a str,
    pub hide_counts: bool,
}

impl<'a> Detail<'a> {
    fn from_json(v: &'a Value) -> Option<Detail<'a>> {
        let o = v.as_object()?;
        Some(Detail {
            current: o.get("current").and_then(Value::as_i64).unwrap_or(0),
            total: o.get("total").and_then(Value::as_i64).unwrap_or(0),
            start: o.get("start").and_then(Value::as_i64).unwrap_or(0),
            units: o.get("units").and_then(Value::as_str).unwrap_or(""),
            hide_counts: o
                .get("hidecounts")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The progress text: `[=====>     ]  12.3MB/45.6MB 3s`, or `""` when there is nothing
    /// to show. `width` is the terminal's, `now` the current Unix time in seconds.
    pub fn render(&self, width: usize, now: i64) -> String {
        if self.current <= 0 && self.total <= 0 {
            return String::new();
        }
        let size = |n: i64| crate::format::human_size_prec(n as f64, 4);
        if self.total <= 0 {
            return if self.units.is_empty() {
                format!("{:>8}", size(self.current))
            } else {
                format!("{} {}", self.current, self.units)
            };
        }
        // Half-percent steps: the bar is 50 cells wide.
        let half = ((self.current as f64 / self.total as f64 * 100.0) as i64 / 2).clamp(0, 50);
        let mut out = String::new();
        if width > BAR_MIN_WIDTH {
            out.push('[');
            out.push_str(&"=".repeat(half as usize));
            out.push('>');
            out.push_str(&" ".repeat(50 - half as usize));
            out.push_str("] ");
        }
        let over = self.current > self.total;
        if self.hide_counts {
        } else if self.units.is_empty() {
            if over {
                out.push_str(&format!("{:>8}", size(self.current)));
            } else {
                out.push_str(&format!("{:>8}/{}", size(self.current), size(self.total)));
            }
        } else if over {
            out.push_str(&format!("{} {}", self.current, self.units));
        } else {
            out.push_str(&format!("{}/{} {}", self.current, self.total, self.units));
        }
        if self.current > 0 && self.start > 0 && half < 50 && width > ETA_MIN_WIDTH {
            let elapsed = (now - self.start).max(0) as f64;
            let left = elapsed / self.current as f64 * (self.total - self.current) as f64;
            out.push(' ');
            out.push_str(&go_duration_secs(left as u64));
        }
        out
    }
}

/// Whole seconds the way Go prints a `time.Duration`: `0s`, `45s`, `2m5s`, `1h0m3s`.
pub fn go_duration_secs(s: u64) -> String {
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Renders messages into bytes to print; pure, so tests can feed messages and read the text.
pub struct Renderer {
    tty: bool,
    width: usize,
    /// The ids with a line in the current in-place block, in line order.
    ids: Vec<String>,
    out: Vec<u8>,
    at_line_start: bool,
    now: fn() -> i64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Renderer {
    /// A renderer for a terminal (`tty`) of `width` columns, or for a pipe or file.
    pub fn new(tty: bool, width: usize) -> Renderer {
        Renderer {
            tty,
            width,
            ids: Vec::new(),
            out: Vec::new(),
            at_line_start: true,
            now: unix_now,
        }
    }

    /// A renderer for this process's stdout.
    pub fn for_stdout() -> Renderer {
        let tty = crate::term::is_tty(libc::STDOUT_FILENO);
        let width = crate::term::size()
            .map(|(_, c)| c as usize)
            .filter(|&c| c > 0)
            .unwrap_or(DEFAULT_WIDTH);
        Renderer::new(tty, width)
    }

    fn write(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.out.extend_from_slice(s.as_bytes());
        self.at_line_start = s.ends_with('\n');
    }

    /// Writes text of the caller's own (build step timings), starting on a fresh line.
    pub fn write_line(&mut self, line: &str) {
        if !self.at_line_start {
            self.write("\n");
        }
        self.ids.clear();
        self.write(line);
        self.write("\n");
    }

    /// Handles one message. `aux` messages are not displayed (the caller reads them); an
    /// error message becomes the command's error.
    pub fn handle(&mut self, v: &Value) -> Result<(), CliError> {
        if let Some(e) = error_of(v) {
            return Err(CliError::Msg(e));
        }
        if v.get("aux").is_some_and(|a| !a.is_null()) {
            return Ok(());
        }
        let id = v["id"].as_str().unwrap_or("");
        let status = v["status"].as_str().unwrap_or("");
        let stream = v["stream"].as_str().unwrap_or("");
        let detail = Detail::from_json(&v["progressDetail"]);
        let legacy_bar = v["progress"].as_str().unwrap_or("");
        let has_progress = detail.is_some() || !legacy_bar.is_empty();

        let mut diff = 0;
        if !id.is_empty() && has_progress {
            let line = match self.ids.iter().position(|x| x == id) {
                Some(i) => i,
                None => {
                    self.ids.push(id.to_string());
                    if self.tty {
                        // A new line for this id; the cursor moves back up to it below.
                        self.write("\n");
                    }
                    self.ids.len() - 1
                }
            };
            diff = self.ids.len() - line;
            if self.tty {
                self.write(&format!("\x1b[{diff}A"));
            }
        } else {
            // Anything else ends the block: a later operation's ids must not rewrite it.
            self.ids.clear();
        }

        let bar = match detail {
            Some(d) => d.render(self.width, (self.now)()),
            None => String::new(),
        };
        let bar = if bar.is_empty() {
            legacy_bar.to_string()
        } else {
            bar
        };
        let in_place = self.tty && stream.is_empty() && has_progress;
        if !self.tty && !bar.is_empty() {
            // No bars without a terminal; the status change was printed already.
            return Ok(());
        }
        let mut line = String::new();
        if in_place {
            line.push_str("\x1b[2K\r");
        }
        if !id.is_empty() {
            line.push_str(id);
            line.push_str(": ");
        }
        if !stream.is_empty() {
            line.push_str(stream);
        } else {
            line.push_str(status);
            if in_place && !bar.is_empty() {
                line.push(' ');
                line.push_str(&bar);
            }
        }
        if in_place {
            line.push('\r');
        } else if stream.is_empty() {
            line.push('\n');
        }
        self.write(&line);
        if self.tty && diff > 0 {
            self.write(&format!("\x1b[{diff}B"));
            self.at_line_start = true;
        }
        Ok(())
    }

    /// What to print so far (and clears it).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// The error a message carries: `errorDetail.message`, else `error`.
pub fn error_of(v: &Value) -> Option<String> {
    v["errorDetail"]["message"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| v["error"].as_str().filter(|s| !s.is_empty()))
        .map(str::to_string)
}

/// Reads a message stream from the daemon and shows it on stdout (nothing when `quiet`, but
/// errors still fail the command); returns the `aux` values in order.
pub async fn display(body: hyper::body::Incoming, quiet: bool) -> Result<Vec<Value>, CliError> {
    let mut r = Renderer::for_stdout();
    let mut aux = Vec::new();
    let result = each_message(body, |v| {
        if let Some(a) = v.get("aux").filter(|a| !a.is_null()) {
            aux.push(a.clone());
        }
        let res = r.handle(&v);
        let out = r.take();
        if !quiet {
            crate::commands::write_out(&out);
        }
        res
    })
    .await;
    if !quiet && crate::term::is_tty(libc::STDOUT_FILENO) {
        let _ = std::io::stdout().flush();
    }
    result.map(|_| aux)
}

/// Calls `f` on each JSON message of a streamed body as it arrives; stops at the first error.
pub async fn each_message<F>(mut body: hyper::body::Incoming, mut f: F) -> Result<(), CliError>
where
    F: FnMut(Value) -> Result<(), CliError>,
{
    let mut lines = JsonLines::default();
    while let Some(chunk) = next_chunk(&mut body).await {
        for v in lines.push(&chunk?) {
            f(v)?;
        }
    }
    for v in lines.finish() {
        f(v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(r: &mut Renderer, msgs: &[Value]) -> String {
        r.now = || 1_000;
        for m in msgs {
            r.handle(m).unwrap();
        }
        String::from_utf8(r.take()).unwrap()
    }

    fn pull_messages() -> Vec<Value> {
        vec![
            json!({"status": "Pulling from library/busybox", "id": "latest"}),
            json!({"status": "Pulling fs layer", "id": "aaa", "progressDetail": {}}),
            json!({"status": "Pulling fs layer", "id": "bbb", "progressDetail": {}}),
            json!({"status": "Downloading", "id": "aaa",
                   "progressDetail": {"current": 12_300_000, "total": 45_600_000},
                   "progress": "[=>   ] legacy"}),
            json!({"status": "Download complete", "id": "aaa", "progressDetail": {}}),
            json!({"status": "Pull complete", "id": "bbb", "progressDetail": {}}),
            json!({"status": "Digest: sha256:0123"}),
            json!({"status": "Status: Downloaded newer image for busybox:latest"}),
        ]
    }

    #[test]
    fn without_a_terminal_one_line_per_status() {
        let mut r = Renderer::new(false, 200);
        assert_eq!(
            render(&mut r, &pull_messages()),
            "latest: Pulling from library/busybox\n\
             aaa: Pulling fs layer\n\
             bbb: Pulling fs layer\n\
             aaa: Download complete\n\
             bbb: Pull complete\n\
             Digest: sha256:0123\n\
             Status: Downloaded newer image for busybox:latest\n"
        );
    }

    #[test]
    fn on_a_terminal_lines_update_in_place() {
        let mut r = Renderer::new(true, 200);
        let out = render(&mut r, &pull_messages());
        let bar = format!("[{}>{}]   12.3MB/45.6MB", "=".repeat(13), " ".repeat(37));
        let want = [
            // No progress: a plain line.
            "latest: Pulling from library/busybox\n".to_string(),
            // New ids: newline, up one, erase, write, down one.
            "\n\x1b[1A\x1b[2K\raaa: Pulling fs layer\r\x1b[1B".into(),
            "\n\x1b[1A\x1b[2K\rbbb: Pulling fs layer\r\x1b[1B".into(),
            // aaa is two lines up from the cursor.
            format!("\x1b[2A\x1b[2K\raaa: Downloading {bar}\r\x1b[2B"),
            "\x1b[2A\x1b[2K\raaa: Download complete\r\x1b[2B".into(),
            "\x1b[1A\x1b[2K\rbbb: Pull complete\r\x1b[1B".into(),
            "Digest: sha256:0123\n".into(),
            "Status: Downloaded newer image for busybox:latest\n".into(),
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn a_plain_line_ends_the_block() {
        let mut r = Renderer::new(true, 200);
        let out = render(
            &mut r,
            &[
                json!({"status": "Waiting", "id": "a", "progressDetail": {}}),
                json!({"status": "Done"}),
                json!({"status": "Waiting", "id": "a", "progressDetail": {}}),
            ],
        );
        assert_eq!(
            out,
            "\n\x1b[1A\x1b[2K\ra: Waiting\r\x1b[1BDone\n\n\x1b[1A\x1b[2K\ra: Waiting\r\x1b[1B"
        );
    }

    #[test]
    fn streams_aux_and_errors() {
        let mut r = Renderer::new(false, 200);
        let out = render(
            &mut r,
            &[
                json!({"stream": "Step 1/2 : FROM x\n"}),
                json!({"stream": "partial"}),
                json!({"aux": {"ID": "sha256:1"}}),
                json!({"stream": " line\n"}),
            ],
        );
        assert_eq!(out, "Step 1/2 : FROM x\npartial line\n");
        let e = r
            .handle(&json!({"error": "boom", "errorDetail": {"message": "boom: detail"}}))
            .unwrap_err();
        assert_eq!(e.to_string(), "boom: detail");
        let e = r.handle(&json!({"error": "only"})).unwrap_err();
        assert_eq!(e.to_string(), "only");
    }

    #[test]
    fn progress_text() {
        let d = |current, total| Detail {
            current,
            total,
            ..Detail::default()
        };
        // Table: detail, terminal width, expected text.
        let cases: Vec<(Detail, usize, String)> = vec![
            (d(0, 0), 200, String::new()),
            (d(0, 100), 80, "      0B/100B".into()),
            (d(2048, 0), 200, " 2.048kB".into()),
            (
                d(1_000_000, 1_000_000),
                200,
                format!("[{}>] {:>8}/1MB", "=".repeat(50), "1MB"),
            ),
            (d(1_500_000, 1_000_000), 80, "   1.5MB".into()),
            (d(12_345_678, 45_678_901), 100, " 12.35MB/45.68MB".into()),
            (
                Detail {
                    current: 3,
                    total: 10,
                    units: "layers",
                    ..Detail::default()
                },
                80,
                "3/10 layers".into(),
            ),
            (
                Detail {
                    current: 3,
                    total: 10,
                    hide_counts: true,
                    ..Detail::default()
                },
                80,
                String::new(),
            ),
            (
                Detail {
                    current: 25,
                    total: 100,
                    start: 990,
                    ..Detail::default()
                },
                80,
                "     25B/100B 30s".into(),
            ),
        ];
        for (detail, width, want) in cases {
            assert_eq!(detail.render(width, 1_000), want, "{detail:?} at {width}");
        }
        assert_eq!(go_duration_secs(0), "0s");
        assert_eq!(go_duration_secs(125), "2m5s");
        assert_eq!(go_duration_secs(3603), "1h0m3s");
    }

    #[test]
    fn legacy_progress_string_when_no_detail() {
        let mut r = Renderer::new(true, 200);
        let out = render(
            &mut r,
            &[json!({"status": "Loading layer", "id": "x", "progress": "[==> ] 1B/2B"})],
        );
        assert_eq!(
            out,
            "\n\x1b[1A\x1b[2K\rx: Loading layer [==> ] 1B/2B\r\x1b[1B"
        );
    }
}
