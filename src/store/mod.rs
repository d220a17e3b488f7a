//! The shell's file-system side: namespace input and runtime files, atomic
//! writes, the management port allocator.

pub mod fsio;
pub mod ports;
