//! The management port allocator of one data home: the first port from
//! 5671 that no namespace of the data home has recorded and that can be
//! bound right now (DESIGN.md 4).

use crate::plan::{read_prior, PortPicker};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

pub struct DataHomePorts {
    pub namespaces_dir: PathBuf,
    /// The namespace asking: its own record does not count against it.
    pub namespace: String,
}

impl DataHomePorts {
    /// Ports other namespaces have recorded, running or not.
    pub fn recorded(&self) -> BTreeSet<u16> {
        let mut out = BTreeSet::new();
        let Ok(entries) = std::fs::read_dir(&self.namespaces_dir) else {
            return out;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy() == self.namespace {
                continue;
            }
            let mut files = BTreeMap::new();
            for rel in [
                crate::plan::prior::IDENTITY_FILE,
                crate::plan::prior::CONFIG_FILE,
            ] {
                if let Ok(bytes) = std::fs::read(entry.path().join(rel)) {
                    files.insert(rel.to_string(), bytes);
                }
            }
            if let Some(id) = read_prior(&files).identity {
                out.insert(id.management_port);
                out.extend(id.link_ports.values().copied());
            }
        }
        out
    }
}

/// Whether 127.0.0.1:`port` can be bound now: a socket is bound and
/// closed, never put in the listening state (skupperd opens no port of its
/// own, and a probe that listened would take connections for its moment).
fn can_bind(port: u16) -> bool {
    use rustix::net::{bind, socket, sockopt, AddressFamily, SocketType};
    let Ok(fd) = socket(AddressFamily::INET, SocketType::STREAM, None) else {
        return false;
    };
    // As std's TcpListener does: a port left in TIME_WAIT is free.
    if sockopt::set_socket_reuseaddr(&fd, true).is_err() {
        return false;
    }
    bind(&fd, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

impl PortPicker for DataHomePorts {
    fn pick(&mut self, from: u16, avoid: &BTreeSet<u16>) -> Option<u16> {
        let recorded = self.recorded();
        (from..=u16::MAX).find(|p| !avoid.contains(p) && !recorded.contains(p) && can_bind(*p))
    }
}

/// For tests and `check`: picks without probing.
pub struct FixedPorts(pub BTreeSet<u16>);

impl PortPicker for FixedPorts {
    fn pick(&mut self, from: u16, avoid: &BTreeSet<u16>) -> Option<u16> {
        (from..=u16::MAX).find(|p| !avoid.contains(p) && !self.0.contains(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_other_namespaces_recorded_are_avoided_link_access_ones_too() {
        let home = tempfile::tempdir().unwrap();
        let other = home.path().join("east/runtime");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(
            other.join("identity.yaml"),
            "siteId: x\nmanagementPort: 5671\nlinkPorts:\n  east-edge: 45671\n  east-inter-router: 55671\n",
        )
        .unwrap();
        let mut ports = DataHomePorts {
            namespaces_dir: home.path().to_path_buf(),
            namespace: "west".into(),
        };
        assert_eq!(ports.recorded(), BTreeSet::from([5671, 45671, 55671]));
        let picked = ports.pick(55671, &BTreeSet::new()).unwrap();
        assert!(picked > 55671, "{picked}");
    }

    #[test]
    fn a_port_held_by_another_socket_cannot_be_bound_and_a_free_one_can() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(!can_bind(port));
        drop(held);
        assert!(can_bind(port));
        // The probe left nothing behind: the port is still free.
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
