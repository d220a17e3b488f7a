//! The shared value rules of resources.md 0.1: names, credential names,
//! hosts and routing keys, with their message fragments.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const LABEL_RULE: &str = "must be an RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit, at most 63 characters)";
pub const CRED_RULE: &str =
    "must be an RFC 1123 name (a-z, 0-9, '-' and '.', at most 253 characters, no '/')";

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: labels joined by `.`, at most 253 characters. Such a
/// name is always a single safe path component (no `/`, no `..`, no leading
/// `.`), which is why credential names are held to it.
pub fn is_cred_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// An IPv4 address, an IPv6 address without brackets or zone, or a
/// lower-case DNS name.
pub fn is_host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_dns_name(s)
}

pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label)
}

pub fn host_fragment(v: &str) -> String {
    format!("\"{v}\" is not an IP address or a lower-case DNS name (a-z, 0-9, '-' and '.', at most 253 characters)")
}

/// What is wrong with a routing key, as the tail of a message.
pub fn routing_key_problem(field: &str, v: &str) -> Option<String> {
    if v.is_empty() {
        Some(format!(
            "{field} must not be empty (omit it to use the listener name)"
        ))
    } else if v.len() > 253 {
        Some(format!(
            "{field} is {} bytes long; the limit is 253",
            v.len()
        ))
    } else if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some(format!(
            "{field} \"{v}\" contains whitespace or control characters"
        ))
    } else {
        None
    }
}

/// A bind address as the overlap rule sees it (resources.md 8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindHost {
    AnyV4,
    AnyV6,
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Name(String),
}

impl BindHost {
    pub fn parse(host: &str) -> BindHost {
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if a.is_unspecified() => BindHost::AnyV4,
            Ok(IpAddr::V4(a)) => BindHost::V4(a),
            Ok(IpAddr::V6(a)) if a.is_unspecified() => BindHost::AnyV6,
            Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => BindHost::V4(v4),
                None => BindHost::V6(a),
            },
            Err(_) => BindHost::Name(host.to_string()),
        }
    }

    /// Whether two bindings on the same port overlap: equal hosts, either
    /// `::`, or `0.0.0.0` against anything that may be IPv4 (a name may
    /// resolve to IPv4).
    pub fn overlaps(&self, other: &BindHost) -> bool {
        use BindHost::*;
        match (self, other) {
            (AnyV6, _) | (_, AnyV6) => true,
            (AnyV4, AnyV4 | V4(_) | Name(_)) | (V4(_) | Name(_), AnyV4) => true,
            (a, b) => a == b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "backend", "a-1", "0", &"x".repeat(63)] {
            assert!(is_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64)] {
            assert!(!is_label(bad), "{bad}");
        }
    }

    #[test]
    fn cred_names_are_single_path_components() {
        assert!(is_cred_name("web-tls"));
        assert!(is_cred_name("web.example.com"));
        for bad in ["", "../etc", "a/b", ".hidden", "a..b", "A", "a."] {
            assert!(!is_cred_name(bad), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "0.0.0.0",
            "127.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "backend",
            "a.example.com",
        ] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in [
            "",
            "[::1]",
            "fe80::1%eth0",
            "Backend",
            "a.example.",
            "-a",
            "a b",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }

    #[test]
    fn routing_keys() {
        assert!(routing_key_problem("spec.routingKey", "backend").is_none());
        assert!(routing_key_problem("spec.routingKey", "a b").is_some());
        assert!(routing_key_problem("spec.routingKey", "a\u{7}").is_some());
        assert!(routing_key_problem("spec.routingKey", &"k".repeat(254))
            .unwrap()
            .contains("254 bytes"));
    }

    #[test]
    fn overlap_rule() {
        let p = BindHost::parse;
        assert!(p("0.0.0.0").overlaps(&p("127.0.0.1")));
        assert!(p("0.0.0.0").overlaps(&p("backend")));
        assert!(!p("0.0.0.0").overlaps(&p("::1")));
        assert!(p("::").overlaps(&p("127.0.0.1")));
        assert!(p("::ffff:127.0.0.1").overlaps(&p("127.0.0.1")));
        assert!(!p("127.0.0.1").overlaps(&p("127.0.0.2")));
        assert!(p("backend").overlaps(&p("backend")));
    }
}
