//! Integration tests: the real `skupperd` binary against real directories.

mod support;

mod check;
mod crash;
mod daemon;
mod disk_faults;
mod hostile_corpus;
mod hostile_fuzz;
mod hostile_input;
mod hostile_security;
mod layers;
mod links_live;
mod live;
mod load;
mod reference;
mod render;
mod router_faults;
mod router_live;
mod tls_live;
mod transcripts;
