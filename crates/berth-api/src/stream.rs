//! The multiplexed stdio framing used by attach, logs and exec without a TTY: each frame is
//! an 8-byte header `[stream, 0, 0, 0, len_be32]` followed by `len` bytes of payload.

/// Which standard stream a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StdStream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// moby's `Systemerr`, used to report an error in the middle of a stream.
    System = 3,
}

impl StdStream {
    pub fn from_byte(b: u8) -> Option<StdStream> {
        match b {
            0 => Some(StdStream::Stdin),
            1 => Some(StdStream::Stdout),
            2 => Some(StdStream::Stderr),
            3 => Some(StdStream::System),
            _ => None,
        }
    }
}

/// Appends one frame carrying `data` on `stream` to `out`.
pub fn encode_frame(stream: StdStream, data: &[u8], out: &mut Vec<u8>) {
    // A frame's length is a u32; split larger payloads so no data is ever truncated. An empty
    // payload still makes one (empty) frame.
    let mut rest = data;
    loop {
        let (chunk, tail) = rest.split_at(rest.len().min(u32::MAX as usize));
        out.push(stream as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
}

/// One frame as bytes.
pub fn frame(stream: StdStream, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    encode_frame(stream, data, &mut out);
    out
}

/// Error from decoding a multiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unrecognized stream in frame header: {0}")]
    BadStream(u8),
}

/// Incremental decoder: feed it bytes as they arrive, take whole frames out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<(StdStream, Vec<u8>)>, FrameError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let stream = StdStream::from_byte(self.buf[0]).ok_or(FrameError::BadStream(self.buf[0]))?;
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let payload = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Ok(Some((stream, payload)))
    }

    /// Bytes received that do not yet make a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Vec<(StdStream, Vec<u8>)>) {
        let frames = vec![
            (StdStream::Stdout, b"hello\n".to_vec()),
            (StdStream::Stderr, b"oops".to_vec()),
            (StdStream::Stdout, Vec::new()),
            (StdStream::Stdout, vec![7u8; 300]),
        ];
        let mut wire = Vec::new();
        for (s, d) in &frames {
            encode_frame(*s, d, &mut wire);
        }
        (wire, frames)
    }

    #[test]
    fn header_layout() {
        assert_eq!(
            frame(StdStream::Stderr, b"ab"),
            vec![2, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']
        );
    }

    #[test]
    fn decodes_when_split_at_every_byte() {
        let (wire, frames) = sample();
        for split in 0..=wire.len() {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                d.push(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split at {split}");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn decodes_byte_by_byte() {
        let (wire, frames) = sample();
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn rejects_bad_stream_byte() {
        let mut d = FrameDecoder::new();
        d.push(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::BadStream(9)));
    }
}
