//! A tiny, strict DER reader and writer: just enough for SubjectPublicKeyInfo, PKCS#1 and
//! PKCS#8 envelopes.
//!
//! The reader accepts DER only: definite, minimally encoded lengths, single-byte tags, and
//! nothing after the outermost element.

/// `SEQUENCE` tag (constructed).
pub(crate) const SEQUENCE: u8 = 0x30;
/// `INTEGER` tag.
pub(crate) const INTEGER: u8 = 0x02;
/// `BIT STRING` tag.
pub(crate) const BIT_STRING: u8 = 0x03;
/// `OCTET STRING` tag.
pub(crate) const OCTET_STRING: u8 = 0x04;
/// `NULL` tag.
pub(crate) const NULL: u8 = 0x05;
/// `OBJECT IDENTIFIER` tag.
pub(crate) const OID: u8 = 0x06;

/// Content bytes of the OID rsaEncryption, 1.2.840.113549.1.1.1.
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// Content bytes of the OID id-Ed25519, 1.3.101.112.
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Why DER input was refused (a static reason, for error messages).
pub(crate) type DerError = &'static str;

/// A cursor over DER bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// Whether all input was consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Reads one element and returns its tag and content.
    pub(crate) fn any(&mut self) -> Result<Element<'a>, DerError> {
        let (&tag, rest) = self.input.split_first().ok_or("truncated DER")?;
        if tag & 0x1f == 0x1f {
            return Err("multi-byte DER tags are not supported");
        }
        let (&first, mut rest) = rest.split_first().ok_or("truncated DER length")?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return Err("indefinite DER length");
            }
            if n > 4 || rest.len() < n {
                return Err("bad DER length");
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            if bytes[0] == 0 {
                return Err("non-minimal DER length");
            }
            let len = bytes
                .iter()
                .fold(0_usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err("non-minimal DER length");
            }
            len
        };
        if rest.len() < len {
            return Err("truncated DER content");
        }
        let (content, after) = rest.split_at(len);
        self.input = after;
        Ok((tag, content))
    }

    /// Reads one element that must carry `tag`; returns its content.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        match self.any()? {
            (t, content) if t == tag => Ok(content),
            _ => Err("unexpected DER tag"),
        }
    }

    /// Reads a `SEQUENCE` and returns a reader over its content.
    pub(crate) fn sequence(&mut self) -> Result<Self, DerError> {
        self.expect(SEQUENCE).map(Self::new)
    }

    /// Reads a non-negative `INTEGER`, returning its magnitude without leading zero bytes.
    pub(crate) fn positive_integer(&mut self) -> Result<&'a [u8], DerError> {
        let content = self.expect(INTEGER)?;
        match content {
            [] => Err("empty DER integer"),
            [b, ..] if b & 0x80 != 0 => Err("negative DER integer"),
            [0, next, ..] if next & 0x80 == 0 => Err("non-minimal DER integer"),
            [0, rest @ ..] => Ok(rest),
            _ => Ok(content),
        }
    }

    /// Fails unless all input was consumed.
    pub(crate) fn finish(&self) -> Result<(), DerError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err("trailing data after DER element")
        }
    }
}

/// Appends a DER element with `tag` and `content` to `out`.
pub(crate) fn write(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// A DER element as a new vector.
pub(crate) fn element(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    write(&mut out, tag, content);
    out
}

/// The DER `AlgorithmIdentifier` of rsaEncryption with NULL parameters.
pub(crate) fn rsa_algorithm_identifier() -> Vec<u8> {
    let mut inner = element(OID, OID_RSA_ENCRYPTION);
    write(&mut inner, NULL, &[]);
    element(SEQUENCE, &inner)
}

/// Wraps a PKCS#1 `RSAPublicKey` into a SubjectPublicKeyInfo.
pub(crate) fn spki_from_pkcs1(rsa_public_key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(rsa_public_key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(rsa_public_key);
    let mut inner = rsa_algorithm_identifier();
    write(&mut inner, BIT_STRING, &bits);
    element(SEQUENCE, &inner)
}

/// Wraps a PKCS#1 `RSAPrivateKey` into a PKCS#8 v1 `PrivateKeyInfo`.
pub(crate) fn pkcs8_from_pkcs1(rsa_private_key: &[u8]) -> Vec<u8> {
    let mut inner = element(INTEGER, &[0]);
    inner.extend_from_slice(&rsa_algorithm_identifier());
    write(&mut inner, OCTET_STRING, rsa_private_key);
    element(SEQUENCE, &inner)
}

/// One DER element: tag and content.
pub(crate) type Element<'a> = (u8, &'a [u8]);

/// Reads an `AlgorithmIdentifier` and returns the OID content and the parameters, if any.
pub(crate) fn algorithm_identifier<'a>(
    r: &mut Reader<'a>,
) -> Result<(&'a [u8], Option<Element<'a>>), DerError> {
    let mut alg = r.sequence()?;
    let oid = alg.expect(OID)?;
    let params = if alg.is_empty() {
        None
    } else {
        Some(alg.any()?)
    };
    alg.finish()?;
    Ok((oid, params))
}

/// The algorithm OID content of a PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey` (v1 or v2).
pub(crate) fn pkcs8_algorithm(der: &[u8]) -> Result<&[u8], DerError> {
    let mut outer = Reader::new(der);
    let mut info = outer.sequence()?;
    outer.finish()?;
    let version = info.expect(INTEGER)?;
    if version != [0] && version != [1] {
        return Err("unsupported PKCS#8 version");
    }
    let (oid, _) = algorithm_identifier(&mut info)?;
    Ok(oid)
}

/// Number of significant bits of a big-endian magnitude without leading zero bytes.
pub(crate) fn bit_length(magnitude: &[u8]) -> u32 {
    match magnitude.first() {
        None => 0,
        Some(first) => {
            let bytes = u32::try_from(magnitude.len()).unwrap_or(u32::MAX / 8);
            bytes.saturating_mul(8) - first.leading_zeros()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0_usize, 1, 0x7f, 0x80, 0xff, 0x100, 0x1234, 0x1_0000] {
            let content = vec![0xab; len];
            let der = element(OCTET_STRING, &content);
            let mut r = Reader::new(&der);
            assert_eq!(r.expect(OCTET_STRING).unwrap(), &content[..]);
            r.finish().unwrap();
        }
    }

    #[test]
    fn rejects_non_der_lengths() {
        // Indefinite, long form for a short length, leading zero length byte, truncated.
        for bad in [
            &[0x04, 0x80, 0x00, 0x00][..],
            &[0x04, 0x81, 0x01, 0xaa],
            &[0x04, 0x82, 0x00, 0x81],
            &[0x04, 0x05, 0x01],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(Reader::new(bad).any().is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn integers() {
        let mut r = Reader::new(&[0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x05]);
        assert_eq!(r.positive_integer().unwrap(), &[0x80]);
        assert_eq!(r.positive_integer().unwrap(), &[0x05]);
        for bad in [
            &[0x02, 0x00][..],
            &[0x02, 0x01, 0x80],
            &[0x02, 0x02, 0x00, 0x05],
        ] {
            assert!(Reader::new(bad).positive_integer().is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7f, 0]), 15);
    }

    #[test]
    fn spki_wrapper_shape() {
        let spki = spki_from_pkcs1(&[0x30, 0x00]);
        let mut outer = Reader::new(&spki);
        let mut seq = outer.sequence().unwrap();
        outer.finish().unwrap();
        let (oid, params) = algorithm_identifier(&mut seq).unwrap();
        assert_eq!(oid, OID_RSA_ENCRYPTION);
        assert_eq!(params, Some((NULL, &[][..])));
        assert_eq!(seq.expect(BIT_STRING).unwrap(), &[0, 0x30, 0x00]);
        seq.finish().unwrap();
    }
}
