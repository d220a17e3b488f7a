//! certs: pure checks of PEM bundles and issuing of generated credentials.
//!
//! (Being written: see the interface contract in the helper task.)
