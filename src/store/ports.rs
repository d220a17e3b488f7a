//! The management port allocator of one data home: the first port from
//! 5671 that no namespace of the data home has recorded and that can be
//! bound right now (DESIGN.md 4).

use crate::plan::{read_prior, PortPicker};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
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
            }
        }
        out
    }
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
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
