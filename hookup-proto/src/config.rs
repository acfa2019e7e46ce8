//! Per-connection configuration: limits, timeouts, automatic replies, seeds.

use std::time::Duration;

use crate::deflate::DeflateConfig;
use crate::limits::InputBudget;

/// Configuration of a [`Connection`](crate::Connection).
///
/// Construct with [`Config::default`] and change fields:
///
/// ```
/// let mut config = hookup_proto::Config::default();
/// config.max_message_size = 1 << 20;
/// config.rng_seed = Some([7; 32]); // deterministic masks and keys
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame payload accepted (default 16 MiB); larger → close 1009.
    pub max_frame_size: usize,
    /// Largest message accepted, summed over its fragments (default 64 MiB);
    /// larger → close 1009.
    pub max_message_size: usize,
    /// Largest HTTP head of the opening handshake (default 16 KiB); larger →
    /// 431 (server) or a handshake error (client).
    pub max_head_size: usize,
    /// Bytes of received payload that may wait in the event queue before
    /// [`Connection::wants_read`](crate::Connection::wants_read) says to stop
    /// reading (default 1 MiB). One message may go past it.
    pub max_buffered_bytes: usize,
    /// Answer pings with pongs automatically (default on). When off, the
    /// application must answer [`Event::Ping`](crate::Event::Ping) itself.
    pub auto_pong: bool,
    /// Deliver the frames of fragmented messages as
    /// [`Event::Fragment`](crate::Event::Fragment) instead of reassembling
    /// them (default off). UTF-8 and `max_message_size` are still enforced.
    pub stream_fragments: bool,
    /// Time allowed for the opening handshake (default 10 s); `None` waits forever.
    pub handshake_timeout: Option<Duration>,
    /// Time to wait for the peer's close frame after sending ours, and (for
    /// a client) for the server to close the transport afterwards (default 5 s).
    pub close_timeout: Duration,
    /// Seed of the ChaCha20 generator of masking keys and handshake nonces
    /// (and, in a reliable [`Session`](crate::reliable::Session), of the
    /// seeds of its connections and its reconnect jitter). `Some` makes runs
    /// reproducible; give 32 bytes from the operating system otherwise
    /// (`hookup-driver` always does when this is `None`). `None` here falls
    /// back to a seed derived from the standard library's random hash keys,
    /// which std does not promise to be unpredictable: not for production
    /// use (RFC 6455 §10.3 requires unpredictable masking keys).
    pub rng_seed: Option<[u8; 32]>,
    /// Payloads of at least this many bytes, sent as owned [`bytes::Bytes`]
    /// by a server, are queued as their own output segment (for vectored
    /// writes) instead of being copied (default 16 KiB).
    pub zero_copy_threshold: usize,
    /// permessage-deflate (RFC 7692), off by default: `Some` makes a client
    /// offer it and a server accept offers of it. See
    /// [`deflate`](crate::deflate).
    pub deflate: Option<DeflateConfig>,
    /// Read inactivity limit once open (default `None`: none). When
    /// nothing has been read for half of it, a ping is sent (a live peer's
    /// pong counts as input); when nothing has been read for all of it, the
    /// connection fails with close 1001 ([`ProtocolError::IdleTimeout`](crate::ProtocolError::IdleTimeout)).
    /// Time spent not reading because the application has not taken what
    /// was received ([`max_buffered_bytes`](Self::max_buffered_bytes)) does not count.
    pub idle_timeout: Option<Duration>,
    /// Time allowed to finish a data message once its first frame header
    /// has arrived (default `None`: no limit); past it the connection fails
    /// with close 1008 ([`ProtocolError::MessageTimeout`](crate::ProtocolError::MessageTimeout)).
    /// Time spent not reading because the application has not taken what
    /// was received does not count.
    pub message_timeout: Option<Duration>,
    /// A budget of unfinished input shared with other connections (default
    /// `None`: none). See [`InputBudget`].
    pub input_budget: Option<InputBudget>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_head_size: 16 << 10,
            max_buffered_bytes: 1 << 20,
            auto_pong: true,
            stream_fragments: false,
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Duration::from_secs(5),
            rng_seed: None,
            zero_copy_threshold: 16 << 10,
            deflate: None,
            idle_timeout: None,
            message_timeout: None,
            input_budget: None,
        }
    }
}
