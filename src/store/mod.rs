//! The shell's file-system side: namespace input and runtime files, atomic
//! writes, the management port allocator, the controller lock.

pub mod fsio;
pub mod lock;
pub mod ports;
