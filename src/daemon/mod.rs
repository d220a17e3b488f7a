//! The daemon shell: systemd notification and signals (the actor glue lives beside them).

pub mod sdnotify;
pub mod signals;
