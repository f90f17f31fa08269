//! [`ServerAddr`]: where a BTPS server listens (PROTOCOL.md §2.2).

use std::fmt;
use std::str::FromStr;

use btps_types::record::{DEFAULT_PORT, HostRecord, ServerHost, parse_server_address};

use crate::error::ClientError;

/// A BTPS server address: host (DNS name or IP) and port.
///
/// Parsed the way a host record's `u` is read (PROTOCOL.md §2.2, through
/// [`btps_types::record::parse_server_address`]): `host`, `host:port`, `btps://host:port`,
/// IPv6 in brackets; the port defaults to 3443. The host is also the TLS server name (SNI
/// and certificate check). [`Display`](fmt::Display) writes `host:port` with IPv6 in
/// brackets, which parses back to the same address.
///
/// # Examples
///
/// ```
/// use btps_client::ServerAddr;
/// let a: ServerAddr = "btps://BTPS.VendorCorp.com".parse().unwrap();
/// assert_eq!(a.to_string(), "btps.vendorcorp.com:3443");
/// let b: ServerAddr = "[::1]:4443".parse().unwrap();
/// assert_eq!((b.to_string(), b.port), ("[::1]:4443".to_owned(), 4443));
/// assert!("".parse::<ServerAddr>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// The host: a lower-cased DNS name or an IP address.
    pub host: ServerHost,
    /// The TCP port.
    pub port: u16,
}

impl ServerAddr {
    /// An address from its parts.
    pub fn new(host: ServerHost, port: u16) -> Self {
        Self { host, port }
    }

    /// The server of a host record (`u`).
    pub fn from_host_record(record: &HostRecord) -> Self {
        Self {
            host: record.host.clone(),
            port: record.port,
        }
    }

    /// Parses an address (see the type's documentation).
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let (host, port) = parse_server_address(text.trim())
            .map_err(|e| ClientError::Config(format!("server address {text:?}: {e}")))?;
        Ok(Self { host, port })
    }

    /// The host as text for a TCP connection (IPv6 without brackets).
    pub(crate) fn connect_host(&self) -> String {
        match &self.host {
            ServerHost::Domain(d) => d.clone(),
            ServerHost::Ip(ip) => ip.to_string(),
        }
    }

    /// Whether the port is the default 3443.
    pub fn has_default_port(&self) -> bool {
        self.port == DEFAULT_PORT
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for ServerAddr {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for ServerAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ServerAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn forms_of_section_2_2() {
        for (text, host, port) in [
            (
                "btps.example.com",
                ServerHost::Domain("btps.example.com".into()),
                3443,
            ),
            (
                "btps.example.com:4000",
                ServerHost::Domain("btps.example.com".into()),
                4000,
            ),
            (
                "btps://Btps.Example.com:4000",
                ServerHost::Domain("btps.example.com".into()),
                4000,
            ),
            (
                "btps://btps.example.com",
                ServerHost::Domain("btps.example.com".into()),
                3443,
            ),
            (
                "127.0.0.1:3443",
                ServerHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                3443,
            ),
            (
                "[::1]",
                ServerHost::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                3443,
            ),
            (
                "btps://[::1]:9",
                ServerHost::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                9,
            ),
        ] {
            let a = ServerAddr::parse(text).unwrap();
            assert_eq!((&a.host, a.port), (&host, port), "{text}");
            assert_eq!(ServerAddr::parse(&a.to_string()).unwrap(), a);
        }
        assert_eq!(ServerAddr::parse("[::1]:9").unwrap().connect_host(), "::1");
        for bad in ["", "host:0", "host:99999", "btps://"] {
            assert!(ServerAddr::parse(bad).is_err(), "{bad}");
        }
        let record = HostRecord::parse("v=1.0.0;u=h.test:1234;s=btps1").unwrap();
        assert_eq!(
            ServerAddr::from_host_record(&record).to_string(),
            "h.test:1234"
        );
    }
}
