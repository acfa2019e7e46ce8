//! TLS configuration helpers (feature `tls`, rustls with the ring backend;
//! defined in `hookup-driver`).

pub use hookup_driver::tls::*;
