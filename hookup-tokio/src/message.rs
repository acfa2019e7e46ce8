//! What the stream yields and the sink takes (defined in `hookup-driver`).

pub use hookup_driver::Message;
