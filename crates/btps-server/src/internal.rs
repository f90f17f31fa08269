//! Entry points for `fuzz/` (hidden from the docs; not a stable API).

/// One function per fuzz target; each must never panic except on a real bug.
pub mod fuzzing {
    use crate::config::ServerConfig;
    use crate::transport::framing::{Frame, LineFramer};
    use crate::{DeliveryOptions, PipelineOptions, RateLimiter, TlsSettings};

    /// What a framer reported, without the byte counts.
    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        Line(Vec<u8>),
        Blank,
        TooLong,
    }

    /// The NDJSON framer (PROTOCOL.md §2.3). `data[0]` picks the line limit (below 128: 0–31
    /// bytes, so that long lines are common; else a multiple of 64 up to 8 128, for whole
    /// artifacts), `data[1]` seeds the chunk sizes, the rest is the byte stream. The stream
    /// is pushed in chunks of 0 to limit + 3 bytes, draining frames after every push as the
    /// connection does; the frames must be exactly those of a plain whole-stream splitter,
    /// whatever the chunking: every line within the limit, without LF, one CR before the LF
    /// stripped, blank lines reported blank, the first over-long line (complete, or a
    /// partial one no line ending can bring back within the limit) the end. Bytes are
    /// conserved: consumed plus buffered is what was pushed.
    pub fn line_framing(data: &[u8]) {
        let [limit, seed, stream @ ..] = data else {
            return;
        };
        let max_line = if limit & 0x80 == 0 {
            usize::from(limit & 0x1f)
        } else {
            usize::from(limit & 0x7f) * 64
        };
        let expected = split_whole(stream, max_line);
        let mut framer = LineFramer::new(max_line);
        let mut got = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15 ^ u64::from(*seed);
        let (mut rest, mut pushed, mut consumed) = (stream, 0, 0);
        'feed: while !rest.is_empty() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = usize::try_from(state % (max_line as u64 + 4))
                .unwrap_or(0)
                .min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            framer.push(chunk);
            pushed += n;
            rest = tail;
            while let Some(frame) = framer.next_frame() {
                match frame {
                    Frame::Line { line, consumed: c } => {
                        assert!(line.len() <= max_line, "line over the limit");
                        assert!(!line.contains(&b'\n'), "LF inside a line");
                        assert!(c == line.len() + 1 || c == line.len() + 2, "{c} consumed");
                        consumed += c;
                        got.push(Event::Line(line));
                    }
                    Frame::Blank { consumed: c } => {
                        consumed += c;
                        got.push(Event::Blank);
                    }
                    Frame::TooLong => {
                        got.push(Event::TooLong);
                        break 'feed;
                    }
                }
            }
            assert_eq!(
                consumed + framer.buffered(),
                pushed,
                "bytes lost or invented"
            );
        }
        assert_eq!(got, expected);
    }

    /// The reference: split the whole stream at LF, strip one CR before each LF.
    fn split_whole(stream: &[u8], max_line: usize) -> Vec<Event> {
        let mut out = Vec::new();
        let mut rest = stream;
        while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
            let content = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
            if content.len() > max_line {
                out.push(Event::TooLong);
                return out;
            }
            out.push(if content.iter().all(u8::is_ascii_whitespace) {
                Event::Blank
            } else {
                Event::Line(content.to_vec())
            });
            rest = &rest[lf + 1..];
        }
        // The unterminated tail is over the limit when even an LF right now (stripping a
        // final CR) would leave it too long.
        if rest.len() - usize::from(rest.ends_with(b"\r")) > max_line {
            out.push(Event::TooLong);
        }
        out
    }

    /// The configuration file (`ServerConfig::from_toml` / `from_toml_with_env`), input read
    /// as lossy UTF-8: up to the first NUL the file, after it one `NAME=value` environment
    /// variable per line. Without variables both parsers agree; variables that are not
    /// options change nothing; a configuration that parses yields its derived options
    /// without panicking.
    pub fn server_config(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let (file, env) = text.split_once('\0').unwrap_or((&text, ""));
        let env: Vec<(String, String)> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let plain = ServerConfig::from_toml(file).ok();
        let no_env = ServerConfig::from_toml_with_env(file, []).ok();
        assert_eq!(plain, no_env, "from_toml and from_toml_with_env disagree");
        let with_env = ServerConfig::from_toml_with_env(file, env.iter().cloned()).ok();
        let mut noisy = env.clone();
        noisy.push(("BTPS_NOT_AN_OPTION".into(), "1".into()));
        noisy.push(("PATH".into(), "/bin".into()));
        noisy.push(("BTPS_".into(), String::new()));
        let with_noise = ServerConfig::from_toml_with_env(file, noisy).ok();
        assert_eq!(
            with_env, with_noise,
            "a variable that is no option changed the result"
        );
        if let Some(config) = with_env {
            let _ = PipelineOptions::from_config(&config);
            let _ = DeliveryOptions::from_config(&config).validate();
            let _ = TlsSettings::from_config(&config);
            let r = &config.rate_limits;
            for n in [r.per_ip_per_minute, r.auth_failures_per_15_minutes] {
                let _ = RateLimiter::per_minute(n).check("k", btps_types::UnixMillis::EPOCH);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn framing_matches_the_whole_stream_splitter() {
            line_framing(b"");
            line_framing(&[3]);
            line_framing(b"\x08\x01{\"a\":1}\r\n\n \t\r\nabc\r\r\nxyz");
            line_framing(b"\x03\x07abc\r\nabc\rabcd\n");
            line_framing(b"\x00\x00\r\n\n\r");
            line_framing(b"\x81\x05{\"a\":1}\n{\"b\":2}\r\n");
            // Every split of a stream with CR and LF at the limit's edges.
            for seed in 0..=255 {
                line_framing(&[[4, seed].as_slice(), b"abcd\r\nab\r\r\nabcd\rx\n"].concat());
            }
            assert_eq!(
                split_whole(b"ab\r\n\r\nabc\r", 2),
                [Event::Line(b"ab".to_vec()), Event::Blank, Event::TooLong]
            );
            assert_eq!(split_whole(b"ab\r", 2), []);
        }

        #[test]
        fn config_accepts_the_documented_forms() {
            server_config(b"");
            server_config(b"listen = \"0.0.0.0:3443\"\n[limits]\nmax_line_bytes = 1024\n");
            server_config(b"[limits]\nmax_line_bytes = -1\n");
            server_config(b"nope = 1");
            server_config(
                b"[store]\nurl = \"file\"\n\0BTPS_LIMITS__MAX_LINE_BYTES=1048576\n\
                  BTPS_DOMAINS=[\"a.test\"]\nBTPS_STORE__URL=postgres://db/btps\n\
                  BTPS_LIMITS=3\nBTPS_LISTEN__X=1\n",
            );
            server_config(b"[[tenants]]\ndomain = \"b.test\"\nserver_identity = \"server$b.test\"\nserver_key = \"k.pem\"\n");
        }
    }
}
