//! Identities (`account$domain`) and selectors ([PROTOCOL.md §1.1]).
//!
//! [PROTOCOL.md §1.1]: https://btps.invalid/PROTOCOL.md#11-identity

use std::fmt;
use std::str::FromStr;

/// Maximum length of an identity in bytes.
pub const MAX_IDENTITY_LEN: usize = 320;
/// Maximum length of one DNS label in bytes.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a text is not an identity or a selector.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No `$`, or more than one.
    #[error("an identity has exactly one '$' (account$domain)")]
    Dollar,
    /// Whitespace or a control character somewhere.
    #[error("an identity contains no whitespace or control characters")]
    Whitespace,
    /// Empty account part.
    #[error("the account part is empty")]
    EmptyAccount,
    /// Domain without a dot, or with an empty label.
    #[error("the domain needs at least two non-empty labels")]
    Domain,
    /// Longer than [`MAX_IDENTITY_LEN`].
    #[error("longer than {MAX_IDENTITY_LEN} bytes")]
    TooLong,
    /// A label (of the account or the domain) longer than [`MAX_LABEL_LEN`] or empty.
    #[error("a DNS label is empty or longer than {MAX_LABEL_LEN} bytes")]
    Label,
    /// A selector that is not a non-empty DNS label of letters, digits, `-` and `_`.
    #[error("a selector is a DNS label of letters, digits, '-' and '_' (1 to 63 bytes)")]
    Selector,
}

/// A BTPS identity `account$domain`, validated, in its original spelling.
///
/// Comparison with [`PartialEq`] is exact (the wire spelling); use [`Identity::eq_ignore_case`]
/// or [`Identity::to_lowercase`] for protocol comparisons, which are case-insensitive.
///
/// **Deviation from btps-node**: exactly one `$` is allowed (`a$$b.c` and `a$b.c$d.e` are
/// rejected), and account and domain labels must fit DNS (they become record names, §6.1).
///
/// # Examples
///
/// ```
/// use btps_types::Identity;
/// let id: Identity = "billing$VendorCorp.com".parse().unwrap();
/// assert_eq!(id.account(), "billing");
/// assert_eq!(id.domain(), "VendorCorp.com");
/// assert!(id.eq_ignore_case(&"Billing$vendorcorp.com".parse().unwrap()));
/// assert!("a$$b.c".parse::<Identity>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    text: String,
    dollar: usize,
}

impl Identity {
    /// Parses and validates an identity.
    ///
    /// # Errors
    ///
    /// [`IdentityError`] naming the rule that failed.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        if text.len() > MAX_IDENTITY_LEN {
            return Err(IdentityError::TooLong);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(IdentityError::Whitespace);
        }
        let mut parts = text.split('$');
        let (Some(account), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(IdentityError::Dollar);
        };
        if account.is_empty() {
            return Err(IdentityError::EmptyAccount);
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(IdentityError::Domain);
        }
        if account
            .split('.')
            .chain(domain.split('.'))
            .any(|l| l.is_empty() || l.len() > MAX_LABEL_LEN)
        {
            return Err(IdentityError::Label);
        }
        Ok(Self {
            text: text.to_owned(),
            dollar: account.len(),
        })
    }

    /// The identity as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part before `$`.
    pub fn account(&self) -> &str {
        &self.text[..self.dollar]
    }

    /// The part after `$`.
    pub fn domain(&self) -> &str {
        &self.text[self.dollar + 1..]
    }

    /// The lowercase form used for comparison, indexing and trust ids (full Unicode
    /// lower-casing, as JavaScript's `toLowerCase`).
    pub fn to_lowercase(&self) -> String {
        self.text.to_lowercase()
    }

    /// Case-insensitive equality (the protocol's identity comparison).
    pub fn eq_ignore_case(&self, other: &Self) -> bool {
        self.text == other.text || self.to_lowercase() == other.to_lowercase()
    }

    /// Whether both identities are in the same domain (case-insensitive).
    pub fn same_domain(&self, other: &Self) -> bool {
        self.domain().to_lowercase() == other.domain().to_lowercase()
    }
}

impl FromStr for Identity {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.text)
    }
}

impl AsRef<str> for Identity {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// A key selector (`btps1`): one DNS label of ASCII letters, digits, `-` and `_`.
///
/// # Examples
///
/// ```
/// use btps_types::Selector;
/// assert!("btps1".parse::<Selector>().is_ok());
/// assert!("a.b".parse::<Selector>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Selector(String);

impl Selector {
    /// Parses and validates a selector.
    ///
    /// # Errors
    ///
    /// [`IdentityError::Selector`].
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        if is_selector(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdentityError::Selector)
        }
    }

    /// The selector text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `text` is a valid selector (see [`Selector`]).
pub fn is_selector(text: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl FromStr for Selector {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Selector {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_identities() {
        for ok in [
            "billing$vendorcorp.com",
            "a$b.c",
            "first.last$sub.example.co.uk",
            "pay$client.com",
            "ünï$exämple.com",
        ] {
            let id = Identity::parse(ok).unwrap();
            assert_eq!(id.as_str(), ok);
            assert_eq!(format!("{}${}", id.account(), id.domain()), ok);
        }
    }

    #[test]
    fn invalid_identities() {
        use IdentityError::*;
        for (bad, why) in [
            ("billing", Dollar),
            ("a$$b.c", Dollar),
            ("a$b.c$d.e", Dollar),
            ("$b.c", EmptyAccount),
            ("a$bc", Domain),
            ("a$b..c", Domain),
            ("a$.c", Domain),
            ("a$b.", Domain),
            ("a b$c.d", Whitespace),
            ("a$c.d\n", Whitespace),
            ("a..b$c.d", Label),
        ] {
            assert_eq!(Identity::parse(bad), Err(why), "{bad}");
        }
        let long_label = format!("{}$b.c", "a".repeat(64));
        assert_eq!(Identity::parse(&long_label), Err(Label));
        let long = format!("a${}.c", "b.".repeat(200));
        assert_eq!(Identity::parse(&long), Err(TooLong));
    }

    #[test]
    fn case_insensitive_comparison() {
        let a = Identity::parse("Billing$VendorCorp.com").unwrap();
        let b = Identity::parse("billing$vendorcorp.com").unwrap();
        assert_ne!(a, b);
        assert!(a.eq_ignore_case(&b));
        assert!(a.same_domain(&Identity::parse("x$VENDORCORP.COM").unwrap()));
    }

    #[test]
    fn selectors() {
        assert!(is_selector("btps1"));
        assert!(is_selector("2025-q1_a"));
        assert!(!is_selector(""));
        assert!(!is_selector("a.b"));
        assert!(!is_selector(&"a".repeat(64)));
    }
}
