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
/// lower-case DNS name. A name the system resolver would read as an IPv4
/// address (`0127.0.0.1`, `0x7f.1`, `127.1`, `2130706433`: inet_aton's
/// octal, hex and short forms) or one whose last label is all digits is
/// no DNS name (RFC 1123 2.1: a host name never has the dotted-decimal
/// form) and is refused: the router would bind or connect to an address
/// the user did not write (`0127.0.0.1` is 87.0.0.1), and the overlap rule
/// would take it for a name.
pub fn is_host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || (is_dns_name(s) && numeric_host(s).is_none())
}

/// Why a name that passes the label rule is still no host name: how the
/// resolver reads it, or its all-numeric last label.
fn numeric_host(s: &str) -> Option<String> {
    if let Some(a) = inet_aton(s) {
        return Some(format!(
            "the system resolver reads it as the IPv4 address {a} (octal, hex or short form); write the address as four decimal numbers"
        ));
    }
    let last = s.rsplit('.').next().unwrap_or(s);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            "it is not a valid IPv4 address, and a DNS name cannot end in an all-digit label"
                .to_string(),
        );
    }
    None
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (a leading
/// `0`) or hex (`0x`); the last part fills the remaining bytes.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    fn part(p: &str) -> Option<u32> {
        let (digits, radix) = if let Some(hex) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (hex, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (p, 10)
        };
        if digits.is_empty() {
            // "0x" alone is 0 to inet_aton; "" is no number.
            return (radix == 16).then_some(0);
        }
        if !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u32::from_str_radix(digits, radix).ok()
    }
    let parts: Vec<u32> = s.split('.').map(part).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&v| v > 255) {
        return None;
    }
    let bits = 8 * (4 - head.len() as u32);
    if bits < 32 && *last >= 1 << bits {
        return None;
    }
    let high = head
        .iter()
        .enumerate()
        .fold(0u32, |a, (i, &v)| a | (v << (24 - 8 * i as u32)));
    Some(Ipv4Addr::from(high | last))
}

pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label)
}

pub fn host_fragment(v: &str) -> String {
    let base = format!("\"{v}\" is not an IP address or a lower-case DNS name (a-z, 0-9, '-' and '.', at most 253 characters)");
    match numeric_host(v).filter(|_| is_dns_name(v)) {
        Some(why) => format!("{base}: {why}"),
        None => base,
    }
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
        v.chars().find(|&c| is_format_char(c)).map(|c| {
            format!(
                "{field} \"{v}\" contains the invisible format character U+{:04X} (bidirectional, zero-width or other Unicode Cf); routing keys must read as they match",
                u32::from(c)
            )
        })
    }
}

/// Unicode general category Cf (format characters: bidirectional
/// controls, zero-width characters, the BOM, tags...), Unicode 15.1. Two
/// routing keys that print alike would match different addresses.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
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
    fn names_the_resolver_reads_as_ipv4_addresses_are_refused() {
        for (host, read_as) in [
            ("0127.0.0.1", "87.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("010.0.0.1", "8.0.0.1"),
            ("0", "0.0.0.0"),
            ("10.1.0x10", "10.1.0.16"),
        ] {
            assert!(!is_host(host), "{host}");
            assert_eq!(
                host_fragment(host),
                format!(
                    "\"{host}\" is not an IP address or a lower-case DNS name (a-z, 0-9, '-' and '.', at most 253 characters): the system resolver reads it as the IPv4 address {read_as} (octal, hex or short form); write the address as four decimal numbers"
                ),
                "{host}"
            );
        }
        for host in ["999.1.1.1", "1.2.3.4.5", "08.1", "a.1"] {
            assert!(!is_host(host), "{host}");
            assert!(
                host_fragment(host).ends_with(": it is not a valid IPv4 address, and a DNS name cannot end in an all-digit label"),
                "{host}: {}",
                host_fragment(host)
            );
        }
        // Names with digits stay names; hex without 0x is no number.
        for ok in ["1a", "deadbeef", "0x7f.example", "10-1.internal", "a1.b2"] {
            assert!(is_host(ok), "{ok}");
        }
        // Not a DNS name for another reason: the plain message.
        assert!(!host_fragment("A.1").contains("resolver"));
    }

    #[test]
    fn routing_keys() {
        assert!(routing_key_problem("spec.routingKey", "backend").is_none());
        assert!(routing_key_problem("spec.routingKey", "a b").is_some());
        assert!(routing_key_problem("spec.routingKey", "a\u{7}").is_some());
        for (key, code) in [
            ("a\u{202e}b", "U+202E"),
            ("\u{200b}backend", "U+200B"),
            ("backend\u{feff}", "U+FEFF"),
            ("a\u{2066}b", "U+2066"),
            ("a\u{ad}b", "U+00AD"),
            ("a\u{e0041}", "U+E0041"),
        ] {
            let p = routing_key_problem("spec.routingKey", key).unwrap();
            assert!(
                p.contains(&format!("contains the invisible format character {code}")),
                "{p}"
            );
        }
        // Visible non-ASCII text is a routing key like any other.
        assert!(routing_key_problem("spec.routingKey", "café-ü-東京").is_none());
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
