//! The file-system shell: everything that touches `<data home>` on disk.

pub mod lock;
