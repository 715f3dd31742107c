//! Limits and options shared by every connection of a host.
//!
//! Names and defaults follow the seed (`WebSocketMultiplayerPeer`):
//! `inbound_buffer_size` 65535, `outbound_buffer_size` 65535,
//! `max_queued_packets` 4096, `handshake_timeout` 3 s, `supported_protocols`,
//! `handshake_headers` (spec/websocket-peer.md §2.2, §3.1). The timers the
//! engine lacks (`close_timeout`) or leaves off (`heartbeat_interval`) have
//! finite, documented defaults.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

pub use crate::handshake::DeflateConfig;
/// Largest accepted `max_handshake_size`: 64 KiB. Far above any real
/// upgrade head (a Godot/Redot peer reads at most 4096 bytes, spec/websocket-peer.md
/// §2.6 step 1; nginx's default header limit is 4 × 8 KiB), and small enough
/// that buffers sized from it stay cheap and no size arithmetic can overflow.
pub const MAX_HANDSHAKE_SIZE: usize = 64 * 1024;

/// Configuration of a [`Connection`](crate::Connection) or [`Host`](crate::Host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest message accepted, in bytes, checked from each frame header
    /// before anything is buffered (on the running total for fragmented
    /// messages); a larger one fails the connection with 1009. It also bounds
    /// the bytes of received messages the application has not read yet: when
    /// full, input is no longer accepted (backpressure). Default 65535.
    pub inbound_buffer_size: usize,
    /// Bytes of queued, unwritten message payload allowed per connection; a
    /// send that would exceed it fails with the payload handed back.
    /// Default 65535 (spec/websocket-peer.md §2.4a). 0 disables the byte
    /// check, as in the engine (spec §2.2): the queue is then bounded by
    /// `max_queued_packets` messages only, and no message is too large.
    pub outbound_buffer_size: usize,
    /// Maximum number of received-but-unread messages, and of queued-but-
    /// unwritten outbound messages, per connection. Default 4096.
    pub max_queued_packets: usize,
    /// Time allowed from TCP accept (server) or connection start (client) to
    /// an open WebSocket — and, for a multiplayer client, to the id message.
    /// Default 3 s.
    pub handshake_timeout: Duration,
    /// Time allowed for the closing handshake after a close frame was sent;
    /// then the socket is closed regardless. Default 5 s (the engine has none).
    pub close_timeout: Duration,
    /// When set, an empty ping is sent every interval while open, and the
    /// connection is dropped when a ping is still unanswered one interval
    /// later (spec/websocket-peer.md §2.9). Default: off, like the engine.
    pub heartbeat_interval: Option<Duration>,
    /// Largest HTTP request or response header block accepted during the
    /// opening handshake: 1024 to [`MAX_HANDSHAKE_SIZE`] (64 KiB). Default
    /// 8192 bytes.
    pub max_handshake_size: usize,
    /// Sub-protocols: offered in this order (client), or acceptable (server).
    pub supported_protocols: Vec<String>,
    /// Extra header lines (`Name: value`) appended verbatim to the upgrade
    /// request (client) or the 101 response (server).
    pub handshake_headers: Vec<String>,
    /// Answer pings with pongs automatically. Default true.
    pub auto_pong: bool,
    /// permessage-deflate (RFC 7692): offered by a client, accepted by a
    /// server when the client offers it, with these parameters. `None`
    /// (default): never offered nor accepted, and the handshake bytes are
    /// exactly the engine's. Needs the `deflate` feature.
    pub permessage_deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            inbound_buffer_size: 65_535,
            outbound_buffer_size: 65_535,
            max_queued_packets: 4096,
            handshake_timeout: Duration::from_secs(3),
            close_timeout: Duration::from_secs(5),
            heartbeat_interval: None,
            max_handshake_size: 8192,
            supported_protocols: Vec::new(),
            handshake_headers: Vec::new(),
            auto_pong: true,
            permessage_deflate: None,
        }
    }
}

/// A [`Config`] value that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `inbound_buffer_size` is 0.
    InboundBufferSize,
    /// `max_queued_packets` is 0.
    MaxQueuedPackets,
    /// `handshake_timeout` is zero (the engine rejects values ≤ 0, spec §3.1).
    HandshakeTimeout,
    /// `max_handshake_size` is below 1024 bytes or above
    /// [`MAX_HANDSHAKE_SIZE`].
    MaxHandshakeSize,
    /// A `handshake_headers` entry is not a single `Name: value` line.
    HandshakeHeader,
    /// A `supported_protocols` entry is empty or not an HTTP token.
    Protocol,
    /// `permessage_deflate` is set but the `deflate` feature is off.
    DeflateUnavailable,
    /// `permessage_deflate` window bits out of range (server 9..=15,
    /// client 8..=15) or level not in 1..=9.
    DeflateParameter,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::InboundBufferSize => "inbound_buffer_size must be greater than 0",
            ConfigError::MaxQueuedPackets => "max_queued_packets must be greater than 0",
            ConfigError::HandshakeTimeout => "handshake_timeout must be greater than 0",
            ConfigError::MaxHandshakeSize => "max_handshake_size must be between 1024 and 65536",
            ConfigError::HandshakeHeader => {
                "each handshake_headers entry must be one `Name: value` line"
            }
            ConfigError::Protocol => "each supported_protocols entry must be a non-empty token",
            ConfigError::DeflateUnavailable => {
                "permessage_deflate needs the `deflate` feature of wsmp-core"
            }
            ConfigError::DeflateParameter => {
                "permessage_deflate: server_max_window_bits 9..=15, client_max_window_bits \
                 8..=15, compression_level 1..=9"
            }
        })
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// Checks that every limit is usable. Constructors of
    /// [`Connection`](crate::Connection) and [`Host`](crate::Host) call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.inbound_buffer_size == 0 {
            return Err(ConfigError::InboundBufferSize);
        }
        if self.max_queued_packets == 0 {
            return Err(ConfigError::MaxQueuedPackets);
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::HandshakeTimeout);
        }
        if !(1024..=MAX_HANDSHAKE_SIZE).contains(&self.max_handshake_size) {
            return Err(ConfigError::MaxHandshakeSize);
        }
        for h in &self.handshake_headers {
            let ok = match h.split_once(':') {
                Some((name, _)) => {
                    !name.is_empty() && name.bytes().all(is_token_byte) && !h.contains(['\r', '\n'])
                }
                None => false,
            };
            if !ok {
                return Err(ConfigError::HandshakeHeader);
            }
        }
        for p in &self.supported_protocols {
            // RFC 6455 §4.1: sub-protocol names are RFC 2616 tokens.
            if p.is_empty() || !p.bytes().all(is_token_byte) {
                return Err(ConfigError::Protocol);
            }
        }
        if let Some(d) = &self.permessage_deflate {
            if !cfg!(feature = "deflate") {
                return Err(ConfigError::DeflateUnavailable);
            }
            // RFC 7692 §7.1.2: 8..=15; zlib cannot compress with 8 (raw).
            if !(9..=15).contains(&d.server_max_window_bits)
                || !(8..=15).contains(&d.client_max_window_bits)
                || !(1..=9).contains(&d.compression_level)
            {
                return Err(ConfigError::DeflateParameter);
            }
        }
        Ok(())
    }
}

/// RFC 7230 §3.2.6 `tchar`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn defaults_match_the_seed() {
        let c = Config::default();
        assert_eq!(c.inbound_buffer_size, 65535);
        assert_eq!(c.outbound_buffer_size, 65535);
        assert_eq!(c.max_queued_packets, 4096);
        assert_eq!(c.handshake_timeout, Duration::from_secs(3));
        assert!(c.supported_protocols.is_empty() && c.handshake_headers.is_empty());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn rejects_unusable_values() {
        let c = Config {
            handshake_timeout: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::HandshakeTimeout));
        let c = Config {
            handshake_headers: vec!["X-A: 1\r\nX-B: 2".to_string()],
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::HandshakeHeader));
        let c = Config {
            supported_protocols: vec!["a b".to_string()],
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Protocol));
        let c = Config {
            handshake_headers: vec!["X-Token: abc".to_string()],
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn deflate_parameters_checked() {
        let with = |d: DeflateConfig| Config {
            permessage_deflate: Some(d),
            ..Config::default()
        };
        let ok = if cfg!(feature = "deflate") {
            Ok(())
        } else {
            Err(ConfigError::DeflateUnavailable)
        };
        assert_eq!(with(DeflateConfig::default()).validate(), ok);
        if cfg!(feature = "deflate") {
            for bad in [
                DeflateConfig {
                    server_max_window_bits: 8,
                    ..DeflateConfig::default()
                },
                DeflateConfig {
                    client_max_window_bits: 16,
                    ..DeflateConfig::default()
                },
                DeflateConfig {
                    compression_level: 0,
                    ..DeflateConfig::default()
                },
            ] {
                assert_eq!(with(bad).validate(), Err(ConfigError::DeflateParameter));
            }
        }
    }
}
