//! skupperd: runs Skupper application-network sites on local systems.
//!
//! See ARCHITECTURE.md for the map. The core (`input`, `resources`,
//! `validate`, `certs`, `plan`, `render`, `status`) is pure: it takes bytes,
//! plain data, `now` and an injected credential mint, and returns plain data.
//! The shell (`store`, `cli`) does every file-system and process operation.
#![forbid(unsafe_code)]

pub mod actor;
pub mod certs;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod input;
pub mod model;
pub mod names;
pub mod plan;
pub mod problem;
pub mod render;
pub mod resources;
pub mod router;
pub mod runner;
pub mod status;
pub mod store;
pub mod sync;
pub mod validate;
pub mod watch;
