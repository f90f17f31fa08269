//! NDJSON framing (PROTOCOL.md §2.3), sans I/O: bytes in, lines out.
//!
//! Lines end at LF; one CR directly before the LF is stripped; blank and whitespace-only
//! lines are reported as [`Frame::Blank`] (no reply); a line longer than the limit (LF and
//! the stripped CR excluded) is [`Frame::TooLong`] as soon as the buffered bytes prove it,
//! without waiting for its LF.

/// One framing result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete, non-blank line without its line ending.
    Line {
        /// The line's bytes.
        line: Vec<u8>,
        /// Bytes it took from the buffer, line ending included.
        consumed: usize,
    },
    /// A blank or whitespace-only line: no reply, the handler is not called.
    Blank {
        /// Bytes it took from the buffer, line ending included.
        consumed: usize,
    },
    /// The current line is over the limit: framing is lost, the connection ends.
    TooLong,
}

/// Splits a byte stream into lines.
#[derive(Debug)]
pub(crate) struct LineFramer {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    /// `buf[start..scanned]` holds no LF.
    scanned: usize,
    max_line: usize,
}

/// Buffer capacity kept between lines; a connection that once sent a large line does not
/// keep its memory.
const KEEP_CAPACITY: usize = 64 * 1024;

impl LineFramer {
    /// A framer for lines of at most `max_line` bytes (line ending excluded).
    pub(crate) fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
        }
    }

    /// Appends received bytes.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            // Only after a line was consumed, so at most one read's tail moves.
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
            if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() < KEEP_CAPACITY / 2 {
                self.buf.shrink_to(KEEP_CAPACITY / 2);
            }
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held and not yet returned in a frame.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Drops everything buffered and frees the buffer.
    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
    }

    /// The next frame, or `None` when the buffer holds no complete line (and the partial
    /// line is still within the limit).
    pub(crate) fn next_frame(&mut self) -> Option<Frame> {
        let pending = &self.buf[self.start..];
        let from = self.scanned - self.start;
        match pending[from..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let lf = from + i;
                let mut content = &pending[..lf];
                if let [rest @ .., b'\r'] = content {
                    content = rest;
                }
                let consumed = lf + 1;
                let frame = if content.len() > self.max_line {
                    Frame::TooLong
                } else if content.iter().all(u8::is_ascii_whitespace) {
                    Frame::Blank { consumed }
                } else {
                    Frame::Line {
                        line: content.to_vec(),
                        consumed,
                    }
                };
                self.start += consumed;
                self.scanned = self.start;
                Some(frame)
            }
            None => {
                self.scanned = self.buf.len();
                let len = pending.len();
                // A partial line one byte over the limit may still end in CR LF.
                let limit = self.max_line.saturating_add(1);
                let too_long = len > limit || (len == limit && pending.last() != Some(&b'\r'));
                too_long.then_some(Frame::TooLong)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str, consumed: usize) -> Option<Frame> {
        Some(Frame::Line {
            line: s.as_bytes().to_vec(),
            consumed,
        })
    }

    #[test]
    fn splits_on_lf_and_strips_one_cr() {
        let mut f = LineFramer::new(100);
        f.push(b"a\nbc\r\nd\r\r\n");
        assert_eq!(f.next_frame(), line("a", 2));
        assert_eq!(f.next_frame(), line("bc", 4));
        assert_eq!(f.next_frame(), line("d\r", 4));
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn blank_lines_are_reported_blank() {
        let mut f = LineFramer::new(100);
        f.push(b"\n \t\r\n\r\nx\n");
        assert_eq!(f.next_frame(), Some(Frame::Blank { consumed: 1 }));
        assert_eq!(f.next_frame(), Some(Frame::Blank { consumed: 4 }));
        assert_eq!(f.next_frame(), Some(Frame::Blank { consumed: 2 }));
        assert_eq!(f.next_frame(), line("x", 2));
    }

    #[test]
    fn partial_lines_across_pushes() {
        let mut f = LineFramer::new(100);
        f.push(b"{\"a\":");
        assert_eq!(f.next_frame(), None);
        f.push(b"1}\r");
        assert_eq!(f.next_frame(), None);
        f.push(b"\n{");
        assert_eq!(f.next_frame(), line("{\"a\":1}", 9));
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.buffered(), 1);
        f.push(b"}\n");
        assert_eq!(f.next_frame(), line("{}", 3));
    }

    #[test]
    fn limit_excludes_the_line_ending() {
        let mut f = LineFramer::new(3);
        f.push(b"abc\nabc\r\n");
        assert_eq!(f.next_frame(), line("abc", 4));
        assert_eq!(f.next_frame(), line("abc", 5));
        // Exactly the limit plus a CR is still waiting for its LF.
        f.push(b"abc\r");
        assert_eq!(f.next_frame(), None);
        f.push(b"\n");
        assert_eq!(f.next_frame(), line("abc", 5));
        f.push(b"abcd\n");
        assert_eq!(f.next_frame(), Some(Frame::TooLong));
    }

    #[test]
    fn partial_line_over_the_limit_is_too_long_without_lf() {
        let mut f = LineFramer::new(3);
        f.push(b"ok\nabc");
        assert_eq!(f.next_frame(), line("ok", 3));
        assert_eq!(f.next_frame(), None);
        f.push(b"d");
        assert_eq!(f.next_frame(), Some(Frame::TooLong));
        f.clear();
        assert_eq!(f.buffered(), 0);
        assert_eq!(f.next_frame(), None);
    }

    #[test]
    fn arbitrary_input_never_panics_and_conserves_bytes() {
        // A small deterministic generator instead of a dependency.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut f = LineFramer::new(8);
            let mut pushed = 0;
            let mut consumed = 0;
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = usize::try_from(seed % 12).unwrap();
                let chunk: Vec<u8> = (0..len)
                    .map(|i| {
                        [b'a', b' ', b'\r', b'\n'][usize::try_from((seed >> (i * 2)) & 3).unwrap()]
                    })
                    .collect();
                f.push(&chunk);
                pushed += chunk.len();
                loop {
                    match f.next_frame() {
                        Some(Frame::Line { line, consumed: n }) => {
                            assert!(line.len() <= 8 && !line.contains(&b'\n'));
                            consumed += n;
                        }
                        Some(Frame::Blank { consumed: n }) => consumed += n,
                        Some(Frame::TooLong) => {
                            f.clear();
                            consumed = pushed;
                        }
                        None => break,
                    }
                }
                assert_eq!(consumed + f.buffered(), pushed);
            }
        }
    }
}
