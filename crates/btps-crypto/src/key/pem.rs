//! PEM armour: decoding one block, encoding in the §6.1 form.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Decodes the single PEM block in `text`: returns its label (`PUBLIC KEY`, `RSA PRIVATE KEY`,
/// …) and the DER bytes.
///
/// Accepts LF or CRLF line ends, surrounding whitespace and any line length; refuses
/// encapsulated headers, text after the end line, a second block, and non-canonical base64.
pub(crate) fn decode(text: &str) -> Result<(&str, Vec<u8>), &'static str> {
    let mut lines = text.trim().lines().map(|l| l.trim_end_matches('\r'));
    let first = lines.next().ok_or("empty PEM")?;
    let label = first
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or("missing PEM BEGIN line")?;
    let mut body = String::with_capacity(text.len());
    let mut ended = false;
    for line in lines.by_ref() {
        if let Some(end) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if end != label {
                return Err("PEM END label differs from BEGIN");
            }
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err("PEM headers are not supported");
        }
        body.push_str(line.trim());
    }
    if !ended {
        return Err("missing PEM END line");
    }
    if lines.next().is_some() {
        return Err("text after the PEM END line");
    }
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "PEM body is not canonical base64")?;
    if der.is_empty() {
        return Err("empty PEM body");
    }
    Ok((label, der))
}

/// Encodes `der` as `-----BEGIN label-----`, base64 in 64-character lines, `-----END
/// label-----`, joined by LF, without a trailing LF (PROTOCOL.md §6.1).
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_line_lengths() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode("PUBLIC KEY", &der);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("\n-----END PUBLIC KEY-----"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(decode(&pem).unwrap(), ("PUBLIC KEY", der.clone()));
        // A trailing LF and CRLF line ends are accepted too.
        assert_eq!(decode(&format!("{pem}\n")).unwrap().1, der);
        assert_eq!(decode(&pem.replace('\n', "\r\n")).unwrap().1, der);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "-----BEGIN PUBLIC KEY-----\nAAA*\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nAAB=\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\n\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\nxx",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
