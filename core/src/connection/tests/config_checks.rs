//! Configuration limits as the connection applies them (issue 10 review):
//! `outbound_buffer_size = 0` means "no byte limit" as in the engine, and
//! `max_handshake_size` has an upper bound.

use alloc::sync::Arc;
use alloc::vec;
use bytes::Bytes;

use super::harness::*;
use crate::config::{Config, ConfigError, MAX_HANDSHAKE_SIZE};
use crate::connection::{ClientError, Connection, MessageKind, SendErrorKind};

#[test]
fn outbound_buffer_size_zero_means_no_byte_limit() {
    // spec/websocket-peer.md §2.2 / §2.4a: 0 disables the byte check.
    let config = Config {
        outbound_buffer_size: 0,
        max_queued_packets: 3,
        ..Config::default()
    };
    assert_eq!(config.validate(), Ok(()));
    let mut s = open_server(Arc::new(config));
    for _ in 0..3 {
        s.send(ms(1), MessageKind::Binary, Bytes::from(vec![7u8; 200_000]))
            .expect("no byte limit");
    }
    assert_eq!(s.buffered_amount(), 600_000);
    // Still bounded by max_queued_packets.
    let err = s
        .send(ms(1), MessageKind::Binary, Bytes::from_static(b"x"))
        .expect_err("count limit");
    assert_eq!(err.kind, SendErrorKind::QueueFull);
    assert_eq!(s.check_send(1), Err(SendErrorKind::QueueFull));
    let frames = parse_frames(&drain(&mut s, ms(2)));
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f.payload.len() == 200_000));
}

#[test]
fn max_handshake_size_has_an_upper_bound() {
    for size in [usize::MAX, MAX_HANDSHAKE_SIZE + 1] {
        let config = Config {
            max_handshake_size: size,
            ..Config::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::MaxHandshakeSize));
        // The client sized its request buffer from it (capacity overflow).
        let r = Connection::client(
            Arc::new(config),
            "ws://example.com/",
            ms(0),
            alloc::boxed::Box::new(SplitMix64(1)),
        );
        assert_eq!(
            r.err(),
            Some(ClientError::Config(ConfigError::MaxHandshakeSize))
        );
    }
    let config = Config {
        max_handshake_size: MAX_HANDSHAKE_SIZE,
        ..Config::default()
    };
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn server_validates_its_config() {
    let bad = [
        Config {
            inbound_buffer_size: 0,
            ..Config::default()
        },
        Config {
            max_queued_packets: 0,
            ..Config::default()
        },
        Config {
            max_handshake_size: usize::MAX,
            ..Config::default()
        },
    ];
    for config in bad {
        let want = config.validate().expect_err("invalid");
        let r = Connection::server(
            Arc::new(config),
            ms(0),
            crate::connection::Admission::Automatic,
        );
        assert_eq!(r.err(), Some(want));
    }
}
