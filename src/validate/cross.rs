//! Rules that involve several resources (resources.md 8): host/port overlap
//! placement. Duplicates and the one-Site rule are applied where resources
//! are grouped (`plan`).

use crate::names::BindHost;

/// A binding already placed, and how to name its owner in a message.
/// Borrows the texts: a pass places every listener of the namespace.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    pub host: BindHost,
    pub host_text: &'a str,
    pub port: u16,
    pub owner: Owner<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner<'a> {
    Management,
    /// A link-access role: (routeraccess, role).
    LinkAccess(&'a str, &'a str),
    Listener(&'a str),
}

/// `host:port`, with brackets around IPv6 addresses.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Places bindings in order; the first one a candidate overlaps makes it
/// lose.
#[derive(Debug, Default)]
pub struct Placement<'a> {
    /// By port: only bindings on the same port can overlap. The first
    /// binding of a port is held inline: most ports have only one.
    placed: std::collections::HashMap<u16, (Placed<'a>, Vec<Placed<'a>>)>,
    /// The host parsed last: listeners mostly share one or two hosts.
    last_host: Option<(&'a str, BindHost)>,
}

impl<'a> Placement<'a> {
    /// Room for `n` bindings, so placing them never rehashes.
    pub fn with_capacity(n: usize) -> Placement<'a> {
        Placement {
            placed: std::collections::HashMap::with_capacity(n),
            last_host: None,
        }
    }

    fn parse(&mut self, host: &'a str) -> BindHost {
        match &self.last_host {
            Some((h, b)) if *h == host => b.clone(),
            _ => {
                let b = BindHost::parse(host);
                self.last_host = Some((host, b.clone()));
                b
            }
        }
    }

    /// Adds the router's management port.
    pub fn with_management(mut self, port: u16) -> Placement<'a> {
        self.add(Placed {
            host: BindHost::parse("127.0.0.1"),
            host_text: "127.0.0.1",
            port,
            owner: Owner::Management,
        });
        self
    }

    /// Adds a link-access role's port. An empty bind host is every
    /// interface (`::`, resources.md 8.4).
    pub fn with_link_access(
        mut self,
        access: &'a str,
        role: &'a str,
        host: &'a str,
        port: u16,
    ) -> Placement<'a> {
        let text = if host.is_empty() { "::" } else { host };
        self.add(Placed {
            host: BindHost::parse(text),
            host_text: text,
            port,
            owner: Owner::LinkAccess(access, role),
        });
        self
    }

    /// What `host:port` would overlap, as a message tail; `None` when it
    /// is free.
    fn conflict_with(&self, bind: &BindHost, host: &str, port: u16) -> Option<String> {
        let (first, more) = self.placed.get(&port)?;
        let hit = std::iter::once(first)
            .chain(more)
            .find(|p| p.host.overlaps(bind))?;
        Some(match &hit.owner {
            Owner::Management => format!(
                "{} is the router's management port; choose another port",
                host_port(hit.host_text, hit.port)
            ),
            Owner::LinkAccess(access, role) => format!(
                "port {port} is used by the router for link access (routeraccess \"{access}\", role {role}); choose another port"
            ),
            Owner::Listener(other) => format!(
                "{} overlaps listener \"{other}\" ({}); a host and port can be used by one listener only",
                host_port(host, port),
                host_port(hit.host_text, hit.port)
            ),
        })
    }

    fn add(&mut self, placed: Placed<'a>) {
        match self.placed.entry(placed.port) {
            std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().1.push(placed),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((placed, Vec::new()));
            }
        }
    }

    /// Places `host:port` for `listener` when it is free, else says what it
    /// overlaps (the host is parsed once).
    pub fn try_place(&mut self, host: &'a str, port: u16, listener: &'a str) -> Result<(), String> {
        let bind = self.parse(host);
        if let Some(why) = self.conflict_with(&bind, host, port) {
            return Err(why);
        }
        self.add(Placed {
            host: bind,
            host_text: host,
            port,
            owner: Owner::Listener(listener),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_port_comes_first() {
        let mut p = Placement::default().with_management(5671);
        assert_eq!(
            p.try_place("0.0.0.0", 5671, "a").unwrap_err(),
            "127.0.0.1:5671 is the router's management port; choose another port"
        );
        assert!(p.try_place("::1", 5671, "b").is_ok());
    }

    #[test]
    fn listeners_overlap_by_address_rule() {
        let mut p = Placement::default();
        p.try_place("127.0.0.1", 8080, "a").unwrap();
        assert_eq!(
            p.try_place("0.0.0.0", 8080, "b").unwrap_err(),
            "0.0.0.0:8080 overlaps listener \"a\" (127.0.0.1:8080); a host and port can be used by one listener only"
        );
        assert!(p.try_place("127.0.0.2", 8080, "c").is_ok());
        assert!(p.try_place("127.0.0.1", 8081, "d").is_ok());
        assert!(p
            .try_place("::", 8080, "e")
            .unwrap_err()
            .contains("[::]:8080"));
    }
}
