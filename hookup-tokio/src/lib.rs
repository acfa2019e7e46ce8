//! Adapter crate (filled by a later issue).
#![deny(missing_docs)]

pub use hookup_proto as proto;
