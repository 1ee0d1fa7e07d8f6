//! The wire protocol between berthd and a container's shim, over the shim's unix socket
//! (`<exec-root>/shims/<id>/shim.sock`).
//!
//! Every message in either direction is a frame: one type byte, a big-endian u32 length, then
//! that many payload bytes. The daemon keeps one connection per running container: it sends
//! commands and receives the container's output and its exit.

use serde::{Deserialize, Serialize};

/// Largest payload accepted in one frame; output is sent in chunks far below this.
pub const MAX_FRAME: usize = 1 << 20;

/// Frame types sent by the daemon to the shim.
pub mod cmd {
    /// Start the created container's process.
    pub const START: u8 = b'S';
    /// Bytes for the container's stdin.
    pub const STDIN: u8 = b'I';
    /// Close the container's stdin.
    pub const CLOSE_STDIN: u8 = b'C';
    /// Send a signal: payload is the signal number as a big-endian u32.
    pub const KILL: u8 = b'K';
    /// Resize the TTY: payload is rows then cols, each a big-endian u16.
    pub const RESIZE: u8 = b'Z';
    /// Ask for the container's state: answered with `evt::STATE`.
    pub const STATE: u8 = b'Q';
    /// Subscribe this connection to output and exit events.
    pub const SUBSCRIBE: u8 = b'A';
    /// Freeze (`1`) or thaw (`0`) the container's cgroup.
    pub const PAUSE: u8 = b'P';
}

/// Frame types sent by the shim to the daemon.
pub mod evt {
    /// Container stdout (or the TTY's output).
    pub const STDOUT: u8 = b'O';
    /// Container stderr.
    pub const STDERR: u8 = b'E';
    /// The container exited: payload is JSON [`ExitInfo`]. Last frame on the connection.
    pub const EXIT: u8 = b'X';
    /// Reply to a command: payload empty on success, else the error message.
    pub const REPLY: u8 = b'R';
    /// Reply to `cmd::STATE`: payload is JSON [`ShimState`].
    pub const STATE: u8 = b'T';
}

/// How the container ended, written by the shim to `exit.json` and sent as `evt::EXIT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub exit_code: i32,
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub error: String,
}

/// What the shim reports about its container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    pub pid: i32,
    pub started_at: String,
    pub running: bool,
    pub paused: bool,
}

/// Encodes one frame.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Error decoding the shim protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("shim frame too large: {0} bytes")]
    TooLarge(usize),
}

/// Incremental frame decoder for either direction.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, ProtoError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(ProtoError::TooLarge(len));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_split_everywhere() {
        let mut wire = encode(cmd::START, b"");
        wire.extend(encode(cmd::STDIN, b"hello"));
        wire.extend(encode(evt::EXIT, br#"{"exit_code":3}"#));
        for split in 0..=wire.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                d.push(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 3, "split {split}");
            assert_eq!(got[1], (cmd::STDIN, b"hello".to_vec()));
        }
    }

    #[test]
    fn refuses_huge_frames() {
        let mut d = Decoder::default();
        d.push(&[b'O', 0xff, 0xff, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
    }
}
