//! One named test per rule, over raw bytes with a pinned mask: a server fed
//! hand-written masked client frames, a client fed server frames.

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;

use super::super::{
    AcceptOptions, Admission, CloseCause, CommandError, Connection, Event, HttpResponse,
    MessageKind, SendErrorKind, State,
};
use super::harness::*;
use crate::config::Config;
use crate::frame::CloseCode;
use crate::handshake::HandshakeError;

const CLOSE_1002: [u8; 4] = [0x88, 0x02, 0x03, 0xEA];
const CLOSE_1007: [u8; 4] = [0x88, 0x02, 0x03, 0xEF];
const CLOSE_1009: [u8; 4] = [0x88, 0x02, 0x03, 0xF1];

/// Feeds `input` to an open default server at t = 1 ms; returns it, what it
/// wrote and its events.
fn server_fed(input: &[u8]) -> (Connection, Vec<u8>, Vec<Event>) {
    server_fed_with(cfg(), input)
}

fn server_fed_with(config: Arc<Config>, input: &[u8]) -> (Connection, Vec<u8>, Vec<Event>) {
    let mut s = open_server(config);
    assert_eq!(s.handle_input(ms(1), input), input.len());
    let out = drain(&mut s, ms(1));
    let ev = events(&mut s);
    (s, out, ev)
}

fn client_fed(input: &[u8]) -> (Connection, Vec<Parsed>, Vec<Event>) {
    let mut c = open_client(cfg());
    assert_eq!(c.handle_input(ms(1), input), input.len());
    let out = drain(&mut c, ms(1));
    let ev = events(&mut c);
    (c, parse_frames(&out), ev)
}

/// The server failed with `code`: wrote exactly `wire`, reported `code`
/// (unclean, protocol error), and asks for the socket to be closed.
fn assert_server_fails(input: &[u8], wire: &[u8], code: u16) {
    let (mut s, out, ev) = server_fed(input);
    assert_eq!(out, wire, "close frame on the wire");
    let info = closed_info(&ev);
    assert_eq!(info.code, CloseCode(code));
    assert!(!info.clean);
    assert_eq!(info.cause, CloseCause::ProtocolError);
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_socket());
    // Input after a failure is discarded.
    let more = cframe(0x81, b"late");
    assert_eq!(s.handle_input(ms(2), &more), more.len());
    assert!(events(&mut s).is_empty());
    assert_eq!(s.transmit_len(), 0);
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

// ----- data and control frames -------------------------------------------

#[test]
fn server_reassembles_fragments_with_interleaved_ping() {
    let mut input = cframe(0x01, b"Hel");
    input.extend(cframe(0x89, b"p"));
    input.extend(cframe(0x00, b"l"));
    input.extend(cframe(0x8A, b"q"));
    input.extend(cframe(0x80, b"o"));
    let (s, out, ev) = server_fed(&input);
    // RFC 6455 §5.4: control frames may be injected in the middle of a fragmented message.
    assert_eq!(out, [0x8A, 0x01, b'p']);
    assert_eq!(
        ev,
        [
            Event::Pong(Bytes::from_static(b"q")),
            msg(MessageKind::Text, b"Hello"),
        ]
    );
    assert_eq!(s.state(), State::Open);
}

#[test]
fn client_reassembles_binary_fragments() {
    let mut input = sframe(0x02, &[1, 2]);
    input.extend(sframe(0x89, b""));
    input.extend(sframe(0x80, &[3]));
    let (_c, out, ev) = client_fed(&input);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].b0, 0x8A);
    assert!(out[0].masked);
    assert!(out[0].payload.is_empty());
    assert_eq!(ev, [msg(MessageKind::Binary, &[1, 2, 3])]);
}

#[test]
fn ping_70_70_is_answered_8a_02_70_70() {
    // spec/websocket-peer.md §6: ping `70 70` → `8A 02 70 70`.
    let (_s, out, ev) = server_fed(&cframe(0x89, &[0x70, 0x70]));
    assert_eq!(out, [0x8A, 0x02, 0x70, 0x70]);
    assert!(ev.is_empty());
}

#[test]
fn client_answers_ping_with_masked_pong_same_payload() {
    let (_c, out, _) = client_fed(&sframe(0x89, &[0x70, 0x70]));
    // RFC 6455 §5.5.3: same application data; §5.3: masked by the client.
    assert_eq!(
        out,
        [Parsed {
            b0: 0x8A,
            masked: true,
            payload: vec![0x70, 0x70]
        }]
    );
    // And the exact bytes with the pinned key.
    let mut c = open_client(cfg());
    c.handle_input(ms(1), &sframe(0x89, &[0x70, 0x70]));
    assert_eq!(drain(&mut c, ms(1)), cframe(0x8A, &[0x70, 0x70]));
}

#[test]
fn unsolicited_pong_is_accepted() {
    // RFC 6455 §5.5.3: a pong may be sent unsolicited.
    let (s, out, ev) = server_fed(&cframe(0x8A, b"hb"));
    assert!(out.is_empty());
    assert_eq!(ev, [Event::Pong(Bytes::from_static(b"hb"))]);
    assert_eq!(s.state(), State::Open);
}

#[test]
fn newest_ping_is_answered_when_pongs_pile_up() {
    // Every ping is answered while at most MAX_PENDING_PONGS wait; past that
    // the newest replaces the last waiting one (RFC 6455 §5.5.3: only the
    // most recent ping needs an answer), so memory stays bounded.
    let mut input = Vec::new();
    for i in 1..=40u8 {
        input.extend(cframe(0x89, &[i]));
    }
    let (_s, out, _) = server_fed(&input);
    let mut expected = Vec::new();
    for i in (1..=31u8).chain([40]) {
        expected.extend([0x8A, 0x01, i]);
    }
    assert_eq!(out, expected);
}

#[test]
fn user_pong_never_replaces_a_pending_automatic_pong() {
    let mut s = open_server(cfg());
    s.handle_input(ms(1), &cframe(0x89, b"a"));
    s.pong(ms(1), b"u").expect("user pong");
    // A second user pong while one waits: the slot is taken.
    assert_eq!(s.pong(ms(1), b"v"), Err(CommandError::QueueFull));
    // Another ping gets its own automatic pong; the user pong stays.
    s.handle_input(ms(1), &cframe(0x89, b"b"));
    let out = drain(&mut s, ms(1));
    assert_eq!(out, [0x8A, 0x01, b'a', 0x8A, 0x01, b'u', 0x8A, 0x01, b'b']);
}

#[test]
fn control_frames_jump_queued_data() {
    let mut s = open_server(cfg());
    s.send(ms(1), MessageKind::Binary, Bytes::from_static(b"d1"))
        .expect("send");
    s.ping(ms(1), b"x").expect("ping");
    assert_eq!(s.ping(ms(1), b"y"), Err(CommandError::QueueFull));
    assert_eq!(s.ping(ms(1), &[0; 126]), Err(CommandError::PayloadTooLong));
    let out = drain(&mut s, ms(1));
    assert_eq!(out, [0x89, 0x01, b'x', 0x82, 0x02, b'd', b'1']);
}

// ----- closing handshake -------------------------------------------------

#[test]
fn server_echoes_close_code_and_reason_then_closes_socket() {
    let mut s = open_server(cfg());
    s.handle_input(ms(1), &cframe(0x88, &close_payload(1000, b"bye")));
    assert_eq!(s.state(), State::Closing);
    assert!(!s.should_close_socket(), "nothing written yet");
    let out = drain(&mut s, ms(1));
    // spec/websocket-peer.md §6: `88 05 03 E8 62 79 65`.
    assert_eq!(out, [0x88, 0x05, 0x03, 0xE8, 0x62, 0x79, 0x65]);
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    assert!(s.should_close_socket());
    assert_eq!(s.state(), State::Closed);
    let info = closed_info(&events(&mut s));
    assert_eq!(info.code, CloseCode::NORMAL);
    assert_eq!(info.reason, "bye");
    assert!(info.clean);
    assert_eq!(info.cause, CloseCause::RemoteClose);
}

#[test]
fn client_echoes_close_then_waits_for_eof() {
    let mut c = open_client(cfg());
    c.handle_input(ms(1), &sframe(0x88, &close_payload(4000, b"done")));
    let out = parse_frames(&drain(&mut c, ms(1)));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].b0, 0x88);
    assert!(out[0].masked);
    assert_eq!(out[0].payload, close_payload(4000, b"done"));
    let info = closed_info(&events(&mut c));
    assert_eq!((info.code, info.clean), (CloseCode(4000), true));
    assert_eq!(c.state(), State::Closed);
    // RFC 6455 §7.1.1: the client waits for the server to close TCP.
    assert!(!c.should_close_socket());
    assert_eq!(c.poll_timeout(), Some(ms(1 + 5000)));
    c.handle_eof(ms(2));
    assert!(c.should_close_socket());
    assert!(events(&mut c).is_empty(), "Closed is reported once");
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn client_closes_socket_after_close_timeout_if_server_keeps_tcp_open() {
    let mut c = open_client(cfg());
    c.handle_input(ms(10), &sframe(0x88, &close_payload(1000, b"")));
    drain(&mut c, ms(10));
    assert_eq!(closed_info(&events(&mut c)).code, CloseCode::NORMAL);
    c.handle_timeout(ms(5009));
    assert!(!c.should_close_socket());
    c.handle_timeout(ms(5010));
    assert!(c.should_close_socket());
    assert!(events(&mut c).is_empty());
}

#[test]
fn empty_close_is_echoed_as_88_00_and_reported_as_1005() {
    let (s, out, ev) = server_fed(&cframe(0x88, b""));
    // spec/websocket-peer.md §6; RFC 6455 §7.1.5: 1005 is never on the wire.
    assert_eq!(out, [0x88, 0x00]);
    let info = closed_info(&ev);
    assert_eq!(info.code, CloseCode::NO_STATUS);
    assert!(info.clean);
    assert!(s.should_close_socket());
}

#[test]
fn invalid_close_codes_fail_with_1002() {
    // RFC 6455 §7.4: codes not valid on receipt.
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        assert_server_fails(&cframe(0x88, &close_payload(code, b"")), &CLOSE_1002, 1002);
    }
}

#[test]
fn registered_close_codes_are_echoed_including_1012() {
    for code in [
        1000u16, 1001, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999,
    ] {
        let (_s, out, ev) = server_fed(&cframe(0x88, &close_payload(code, b"r")));
        assert_eq!(out, sframe(0x88, &close_payload(code, b"r")), "code {code}");
        assert_eq!(closed_info(&ev).code, CloseCode(code));
    }
}

#[test]
fn one_byte_close_payload_fails_with_1002() {
    // RFC 6455 §5.5.1: the body, if any, starts with a 2-byte code.
    assert_server_fails(&cframe(0x88, &[0x03]), &CLOSE_1002, 1002);
}

#[test]
fn close_reason_with_invalid_utf8_fails_with_1007() {
    assert_server_fails(&cframe(0x88, &[0x03, 0xE8, b'o', 0xFF]), &CLOSE_1007, 1007);
}

#[test]
fn local_close_completes_when_peer_answers() {
    let mut s = open_server(cfg());
    s.close(ms(1), CloseCode::GOING_AWAY, "bye").expect("close");
    assert_eq!(s.state(), State::Closing);
    assert_eq!(
        s.send(ms(1), MessageKind::Text, Bytes::from_static(b"x"))
            .map_err(|e| e.kind),
        Err(SendErrorKind::NotOpen)
    );
    assert_eq!(s.ping(ms(1), b""), Err(CommandError::InvalidState));
    assert_eq!(
        drain(&mut s, ms(1)),
        sframe(0x88, &close_payload(1001, b"bye"))
    );
    assert!(!s.should_close_socket(), "waits for the client's close");
    // Data arriving before the answer is still delivered (RFC 6455 §1.4).
    let mut input = cframe(0x81, b"tail");
    input.extend(cframe(0x88, &close_payload(1001, b"bye")));
    s.handle_input(ms(2), &input);
    assert!(s.should_close_socket());
    let ev = events(&mut s);
    assert_eq!(ev[0], msg(MessageKind::Text, b"tail"));
    let info = closed_info(&ev);
    assert_eq!(
        (info.code, info.clean, info.cause),
        (CloseCode(1001), true, CloseCause::LocalClose)
    );
}

#[test]
fn unsendable_close_codes_are_refused() {
    let mut s = open_server(cfg());
    // RFC 6455 §7.4.1: 1005, 1006 and 1015 must not be sent.
    for code in [1005u16, 1006, 1015, 999, 5000] {
        assert_eq!(
            s.close(ms(1), CloseCode(code), ""),
            Err(CommandError::InvalidCloseCode)
        );
    }
    let long = "x".repeat(124);
    assert_eq!(
        s.close(ms(1), CloseCode::NORMAL, &long),
        Err(CommandError::PayloadTooLong)
    );
    assert_eq!(s.state(), State::Open);
    assert_eq!(s.transmit_len(), 0);
}

#[test]
fn no_pong_after_close_is_queued() {
    let mut s = open_server(cfg());
    s.close(ms(1), CloseCode::NORMAL, "").expect("close");
    s.handle_input(ms(1), &cframe(0x89, b"late"));
    // RFC 6455 §5.5.1: nothing is sent after the close frame.
    assert_eq!(drain(&mut s, ms(1)), [0x88, 0x02, 0x03, 0xE8]);
}

#[test]
fn close_timeout_drops_the_connection() {
    let mut s = open_server(cfg());
    s.close(ms(100), CloseCode::NORMAL, "").expect("close");
    drain(&mut s, ms(100));
    assert_eq!(s.poll_timeout(), Some(ms(5100)));
    s.handle_timeout(ms(5099));
    assert_eq!(s.state(), State::Closing);
    s.handle_timeout(ms(5100));
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_socket());
    let info = closed_info(&events(&mut s));
    assert_eq!(info.cause, CloseCause::CloseTimeout);
    assert_eq!(info.code, CloseCode::ABNORMAL);
}

#[test]
fn close_then_half_close_still_gets_the_echo() {
    // A client that sends its close frame and shuts down its write side at
    // once (FIN) can still read: RFC 6455 §5.5.1 says the close is echoed,
    // so the echo must be written before the socket is closed.
    let mut s = open_server(cfg());
    let close = cframe(0x88, &[0x03, 0xE8, b'b', b'y', b'e']);
    assert_eq!(s.handle_input(ms(1), &close), close.len());
    s.handle_eof(ms(1));
    assert!(!s.should_close_socket(), "the echo is still owed");
    let out = drain(&mut s, ms(2));
    assert_eq!(out, sframe(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_socket());
    let info = closed_info(&events(&mut s));
    assert_eq!((info.code, info.clean), (CloseCode::NORMAL, true));
}

#[test]
fn eof_without_close_is_abnormal_1006() {
    let mut s = open_server(cfg());
    s.handle_eof(ms(1));
    let info = closed_info(&events(&mut s));
    assert_eq!(
        (info.code, info.cause),
        (CloseCode::ABNORMAL, CloseCause::Eof)
    );
    assert!(s.should_close_socket());
}

// ----- failures ----------------------------------------------------------

#[test]
fn unmasked_client_frame_fails_88_02_03_ea() {
    // RFC 6455 §5.1; spec/websocket-peer.md §6.
    assert_server_fails(&sframe(0x81, b"hi"), &CLOSE_1002, 1002);
}

#[test]
fn masked_server_frame_fails_client_with_1002() {
    let (c, out, ev) = client_fed(&frame(0x81, b"hi", Some(MASK)));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].b0, 0x88);
    assert_eq!(out[0].payload, [0x03, 0xEA]);
    let info = closed_info(&ev);
    assert_eq!(info.code, CloseCode::PROTOCOL_ERROR);
    assert_eq!(c.state(), State::Closed);
    // The client still waits for the server to close TCP.
    assert!(!c.should_close_socket());
}

#[test]
fn rsv_bit_fails_with_1002() {
    // RFC 6455 §5.2: no extension negotiated.
    for b0 in [0xC1u8, 0xA1, 0x91, 0xC9] {
        assert_server_fails(&cframe(b0, b"hi"), &CLOSE_1002, 1002);
    }
}

#[test]
fn reserved_opcode_fails_with_1002() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_server_fails(&cframe(0x80 | op, b""), &CLOSE_1002, 1002);
    }
}

#[test]
fn continuation_without_start_fails_with_1002() {
    assert_server_fails(&cframe(0x80, b"x"), &CLOSE_1002, 1002);
    assert_server_fails(&cframe(0x00, b"x"), &CLOSE_1002, 1002);
}

#[test]
fn new_data_frame_inside_fragmented_message_fails_with_1002() {
    let mut input = cframe(0x01, b"a");
    input.extend(cframe(0x81, b"b"));
    assert_server_fails(&input, &CLOSE_1002, 1002);
    let mut input = cframe(0x02, b"a");
    input.extend(cframe(0x02, b"b"));
    assert_server_fails(&input, &CLOSE_1002, 1002);
}

#[test]
fn control_frame_over_125_or_fragmented_fails_with_1002() {
    // RFC 6455 §5.5.
    assert_server_fails(&cframe(0x89, &[0; 126]), &CLOSE_1002, 1002);
    assert_server_fails(&cframe(0x88, &[0x03, 0xE8].repeat(64)), &CLOSE_1002, 1002);
    assert_server_fails(&cframe(0x09, b""), &CLOSE_1002, 1002);
    assert_server_fails(&cframe(0x0A, b""), &CLOSE_1002, 1002);
}

#[test]
fn non_minimal_length_fails_with_1002() {
    // RFC 6455 §5.2: minimal number of bytes.
    assert_server_fails(&[0x82, 0xFE, 0x00, 0x05, 0, 0, 0, 0], &CLOSE_1002, 1002);
    let mut h = vec![0x82, 0xFF];
    h.extend_from_slice(&1000u64.to_be_bytes());
    h.extend_from_slice(&MASK);
    assert_server_fails(&h, &CLOSE_1002, 1002);
    let mut h = vec![0x82, 0xFF];
    h.extend_from_slice(&(1u64 << 63).to_be_bytes());
    h.extend_from_slice(&MASK);
    assert_server_fails(&h, &CLOSE_1002, 1002);
}

#[test]
fn oversize_single_frame_fails_1009_from_its_header() {
    // Header of a 70000-byte masked binary frame, and nothing else.
    let full = cframe(0x82, &[0u8; 70_000]);
    let header = &full[..14];
    let mut s = open_server(cfg());
    assert_eq!(s.handle_input(ms(1), header), header.len());
    // RFC 6455 §10.4: decided before the payload is buffered.
    assert_eq!(drain(&mut s, ms(1)), CLOSE_1009);
    assert_eq!(
        closed_info(&events(&mut s)).code,
        CloseCode::MESSAGE_TOO_BIG
    );
    assert!(s.buffered_memory() < 1024);
    // The payload that follows is discarded.
    assert_eq!(s.handle_input(ms(1), &full[14..]), full.len() - 14);
}

#[test]
fn oversize_limit_is_inclusive() {
    let config = Arc::new(Config {
        inbound_buffer_size: 100,
        ..Config::default()
    });
    let (_s, out, ev) = server_fed_with(config.clone(), &cframe(0x82, &[7; 100]));
    assert!(out.is_empty());
    assert_eq!(ev, [msg(MessageKind::Binary, &[7; 100])]);
    let (_s, out, _) = server_fed_with(config, &cframe(0x82, &[7; 101]));
    assert_eq!(out, CLOSE_1009);
}

#[test]
fn oversize_fragmented_message_fails_1009_on_running_total() {
    let config = Arc::new(Config {
        inbound_buffer_size: 100,
        ..Config::default()
    });
    let mut s = open_server(config);
    let mut input = cframe(0x02, &[1; 60]);
    input.extend(cframe(0x89, b""));
    assert_eq!(s.handle_input(ms(1), &input), input.len());
    assert_eq!(drain(&mut s, ms(1)), [0x8A, 0x00]);
    // 60 + 41 > 100: the header alone decides.
    let next = cframe(0x80, &[1; 41]);
    assert_eq!(s.handle_input(ms(1), &next[..6]), 6);
    assert_eq!(drain(&mut s, ms(1)), CLOSE_1009);
    assert_eq!(closed_info(&events(&mut s)).code, CloseCode(1009));
}

#[test]
fn invalid_utf8_fails_88_02_03_ef() {
    assert_server_fails(&cframe(0x81, &[b'a', 0xFF, b'b']), &CLOSE_1007, 1007);
    // An incomplete sequence at the end of the message.
    assert_server_fails(&cframe(0x81, &[b'a', 0xE2, 0x82]), &CLOSE_1007, 1007);
}

#[test]
fn invalid_utf8_fails_fast_before_the_message_ends() {
    let mut s = open_server(cfg());
    // A text fragment, then a continuation frame of 10 bytes of which only
    // the first 3 arrive, the third invalid (a surrogate's lead is fine, 0xC0 is not).
    let mut input = cframe(0x01, "é".as_bytes());
    let cont = cframe(
        0x80,
        &[b'a', b'b', 0xC0, b'c', b'd', b'e', b'f', b'g', b'h', b'i'],
    );
    input.extend_from_slice(&cont[..6 + 2]);
    assert_eq!(s.handle_input(ms(1), &input), input.len());
    assert!(s.transmit_len() == 0, "still valid so far");
    assert_eq!(s.handle_input(ms(1), &cont[8..9]), 1);
    // RFC 6455 §8.1: fail as soon as the bytes are invalid.
    assert_eq!(drain(&mut s, ms(1)), CLOSE_1007);
    // And a split multi-byte sequence across frames is fine.
    let mut input = cframe(0x01, &[0xE2, 0x82]);
    input.extend(cframe(0x80, &[0xAC]));
    let (_s, out, ev) = server_fed(&input);
    assert!(out.is_empty());
    assert_eq!(ev, [msg(MessageKind::Text, "€".as_bytes())]);
}

#[test]
fn input_after_close_frame_is_discarded() {
    let mut input = cframe(0x88, &close_payload(1000, b""));
    input.extend(cframe(0x81, b"after"));
    input.extend(b"garbage \xFF\xFF");
    let (mut s, out, ev) = server_fed(&input);
    assert_eq!(out, [0x88, 0x02, 0x03, 0xE8]);
    assert_eq!(ev.len(), 1, "only Closed: {ev:?}");
    assert_eq!(s.handle_input(ms(5), b"more"), 4);
    assert!(events(&mut s).is_empty());
}

#[test]
fn queued_data_is_dropped_on_failure_but_sent_before_an_echo() {
    let mut s = open_server(cfg());
    s.send(ms(1), MessageKind::Binary, Bytes::from_static(b"q"))
        .expect("send");
    s.handle_input(ms(1), &cframe(0x88, b""));
    // Queued data goes out before the echo (RFC 6455 §1.4).
    assert_eq!(drain(&mut s, ms(1)), [0x82, 0x01, b'q', 0x88, 0x00]);

    let mut s = open_server(cfg());
    s.send(ms(1), MessageKind::Binary, Bytes::from_static(b"q"))
        .expect("send");
    s.handle_input(ms(1), &sframe(0x81, b"bad"));
    // RFC 6455 §7.1.7: nothing more is owed to a peer that broke the protocol.
    assert_eq!(drain(&mut s, ms(1)), CLOSE_1002);
    assert_eq!(s.buffered_amount(), 0);
}

// ----- opening handshake -------------------------------------------------

#[test]
fn handshake_timeout_when_server_receives_nothing() {
    let mut s = Connection::server(cfg(), ms(1000), Admission::Automatic).expect("valid config");
    assert_eq!(s.poll_timeout(), Some(ms(4000)));
    s.handle_timeout(ms(3999));
    assert_eq!(s.state(), State::Connecting);
    s.handle_timeout(ms(4000));
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_socket());
    // spec/websocket-peer.md §3.5: dropped silently.
    assert_eq!(s.transmit_len(), 0);
    assert_eq!(
        closed_info(&events(&mut s)).cause,
        CloseCause::HandshakeTimeout
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn handshake_timeout_with_slow_partial_request() {
    let mut s = Connection::server(cfg(), ms(0), Admission::Automatic).expect("valid config");
    let req = upgrade_request();
    let mut t = 0;
    for b in &req[..req.len() - 1] {
        t += 25;
        if s.poll_timeout().is_some_and(|d| d <= ms(t)) {
            s.handle_timeout(ms(t));
        }
        if s.state() == State::Closed {
            break;
        }
        assert_eq!(s.handle_input(ms(t), core::slice::from_ref(b)), 1);
    }
    assert_eq!(s.state(), State::Closed, "closed by the timer at 3 s");
    assert!((3000..3100).contains(&t));
    assert_eq!(
        closed_info(&events(&mut s)).cause,
        CloseCause::HandshakeTimeout
    );
    assert_eq!(s.transmit_len(), 0);
}

#[test]
fn client_handshake_timeout() {
    let mut c = client(cfg());
    drain(&mut c, ms(0));
    c.handle_timeout(ms(3000));
    assert_eq!(
        closed_info(&events(&mut c)).cause,
        CloseCause::HandshakeTimeout
    );
    assert!(c.should_close_socket());
}

#[test]
fn server_handshake_byte_by_byte_with_early_frame() {
    let mut s = Connection::server(cfg(), ms(0), Admission::Automatic).expect("valid config");
    let mut input = upgrade_request();
    input.extend(cframe(0x81, b"early"));
    for b in &input {
        assert_eq!(s.handle_input(ms(1), core::slice::from_ref(b)), 1);
    }
    let out = drain(&mut s, ms(1));
    let text = core::str::from_utf8(&out).expect("ascii");
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(text.contains(&["Sec-WebSocket-Accept: ", ACCEPT, "\r\n"].concat()));
    assert_eq!(
        events(&mut s),
        [
            Event::Open { protocol: None },
            msg(MessageKind::Text, b"early")
        ]
    );
}

#[test]
fn client_request_and_early_frame_in_the_response_read() {
    let mut c = client(cfg());
    let req = drain(&mut c, ms(0));
    let text = core::str::from_utf8(&req).expect("ascii");
    assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
    let mut resp = response_with(&accept_for(&req), &[]);
    resp.extend(sframe(0x82, &[0x87, 0xD6, 0x12, 0x00]));
    assert_eq!(c.handle_input(ms(1), &resp), resp.len());
    assert_eq!(
        events(&mut c),
        [
            Event::Open { protocol: None },
            msg(MessageKind::Binary, &[0x87, 0xD6, 0x12, 0x00])
        ]
    );
}

/// The head ends where the engine ends it (the first CRLFCRLF) and httparse
/// must agree: an earlier bare-LF empty line would make the bytes between
/// the two ends vanish (neither head nor frames). Rejected as malformed.
#[test]
fn client_response_with_an_earlier_bare_lf_end_is_malformed() {
    let mut c = client(cfg());
    let req = drain(&mut c, ms(0));
    let mut resp = response_with(&accept_for(&req), &[]);
    // `...\r\n\r\n` → `...\r\n\n`, then a frame whose payload holds CRLFCRLF.
    resp.pop();
    resp.pop();
    resp.push(b'\n');
    resp.extend(sframe(0x81, b"\r\n\r\n"));
    assert_eq!(c.handle_input(ms(1), &resp), resp.len());
    let evs = events(&mut c);
    assert!(
        !evs.iter().any(|e| matches!(e, Event::Open { .. })),
        "opened although part of the input vanished: {evs:?}"
    );
    assert_eq!(
        closed_info(&evs).cause,
        CloseCause::Handshake(HandshakeError::Malformed)
    );
}

#[test]
fn server_request_with_an_earlier_bare_lf_end_is_malformed() {
    let mut s = Connection::server(cfg(), ms(0), Admission::Automatic).expect("valid config");
    let mut req = upgrade_request();
    req.pop();
    req.pop();
    req.push(b'\n');
    // A zero mask keeps the CRLFCRLF visible to the head scanner.
    req.extend(frame(0x81, b"\r\n\r\n", Some([0; 4])));
    assert_eq!(s.handle_input(ms(1), &req), req.len());
    let out = drain(&mut s, ms(1));
    assert!(
        out.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        core::str::from_utf8(&out)
    );
    assert_eq!(
        closed_info(&events(&mut s)).cause,
        CloseCause::Handshake(HandshakeError::Malformed)
    );
}

fn client_handshake_fails(config: Arc<Config>, response: &[u8], want: HandshakeError) {
    let mut c = Connection::client(
        config,
        "ws://example.com/",
        ms(0),
        alloc::boxed::Box::new(SplitMix64(1)),
    )
    .expect("client");
    drain(&mut c, ms(0));
    c.handle_input(ms(1), response);
    assert_eq!(c.state(), State::Closed);
    assert!(c.should_close_socket());
    assert_eq!(c.transmit_len(), 0);
    let info = closed_info(&events(&mut c));
    assert_eq!(info.cause, CloseCause::Handshake(want));
    assert_eq!(info.code, CloseCode::ABNORMAL);
}

#[test]
fn client_rejects_bad_accept() {
    client_handshake_fails(
        cfg(),
        &response_with(ACCEPT, &[]),
        HandshakeError::BadAccept,
    );
}

#[test]
fn client_rejects_non_101() {
    client_handshake_fails(
        cfg(),
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        HandshakeError::UnexpectedStatus(404),
    );
}

#[test]
fn client_rejects_unoffered_protocol() {
    let config = Arc::new(Config {
        supported_protocols: vec!["a".to_string()],
        ..Config::default()
    });
    let mut c = Connection::client(
        config,
        "ws://example.com/",
        ms(0),
        alloc::boxed::Box::new(SplitMix64(1)),
    )
    .expect("client");
    let req = drain(&mut c, ms(0));
    assert!(core::str::from_utf8(&req)
        .expect("ascii")
        .contains("Sec-WebSocket-Protocol: a\r\n"));
    let resp = response_with(&accept_for(&req), &["Sec-WebSocket-Protocol: b"]);
    c.handle_input(ms(1), &resp);
    assert_eq!(
        closed_info(&events(&mut c)).cause,
        CloseCause::Handshake(HandshakeError::UnexpectedProtocol)
    );
}

#[test]
fn client_eof_during_handshake() {
    let mut c = client(cfg());
    drain(&mut c, ms(0));
    c.handle_input(ms(1), b"HTTP/1.1 101");
    c.handle_eof(ms(2));
    assert_eq!(
        closed_info(&events(&mut c)).cause,
        CloseCause::Handshake(HandshakeError::Malformed)
    );
}

/// Feeds a request to an automatic server; returns the response text.
fn server_answer(request: &[u8]) -> (String, CloseCause) {
    let mut s = Connection::server(cfg(), ms(0), Admission::Automatic).expect("valid config");
    assert_eq!(s.handle_input(ms(1), request), request.len());
    // The response is written, then the socket closed.
    assert!(s.should_close_socket());
    let out = drain(&mut s, ms(1));
    let info = closed_info(&events(&mut s));
    assert_eq!(s.state(), State::Closed);
    (String::from_utf8(out).expect("ascii"), info.cause)
}

#[test]
fn server_answers_bad_requests_with_http_errors() {
    let (text, cause) = server_answer(
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.contains("Connection: close\r\n"));
    assert_eq!(cause, CloseCause::Handshake(HandshakeError::BadKey));

    // RFC 6455 §4.4: 426 with the version we speak.
    let (text, _) = server_answer(
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 426 "), "{text}");
    assert!(text.contains("Sec-WebSocket-Version: 13\r\n"), "{text}");

    // Not an upgrade at all: plain 400.
    let (text, cause) = server_answer(b"GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert_eq!(cause, CloseCause::HttpResponse(400));

    // Garbage.
    let (text, _) = server_answer(b"\x00\x01 nonsense\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");

    // RFC 9110 §15.5.6: 405 carries Allow.
    let (text, _) = server_answer(
        b"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    assert!(text.contains("Allow: GET\r\n"), "{text}");
}

#[test]
fn server_rejects_oversized_request_head() {
    let mut s = Connection::server(cfg(), ms(0), Admission::Automatic).expect("valid config");
    let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    while req.len() < 9000 {
        req.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let n = s.handle_input(ms(1), &req);
    assert_eq!(n, req.len());
    let out = drain(&mut s, ms(1));
    assert!(out.starts_with(b"HTTP/1.1 431 "));
    assert!(s.should_close_socket());
    assert!(s.buffered_memory() < 20_000);
}

#[test]
fn manual_admission_accept_with_protocol() {
    let mut s = Connection::server(cfg(), ms(0), Admission::Manual).expect("valid config");
    let mut input = request_with(&["Sec-WebSocket-Protocol: x, y"]);
    let head_len = input.len();
    input.extend(cframe(0x82, b"hi"));
    // The frame after the head waits for the decision.
    assert_eq!(s.handle_input(ms(1), &input), head_len);
    assert!(!s.can_read());
    let ev = events(&mut s);
    let Some(Event::Request(req)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(req.path, "/chat");
    assert_eq!(req.protocols, ["x", "y"]);
    assert!(req.is_upgrade);
    assert_eq!(req.header("host"), Some("server.example.com"));
    assert_eq!(
        s.accept(
            ms(2),
            AcceptOptions {
                protocol: Some("z".to_string()),
                ..AcceptOptions::default()
            }
        ),
        Err(CommandError::ProtocolNotOffered)
    );
    s.accept(
        ms(2),
        AcceptOptions {
            protocol: Some("y".to_string()),
            headers: vec!["X-Extra: 1".to_string()],
        },
    )
    .expect("accept");
    assert_eq!(s.selected_protocol(), Some("y"));
    assert!(s.can_read());
    let out = String::from_utf8(drain(&mut s, ms(2))).expect("ascii");
    assert!(
        out.contains("Sec-WebSocket-Protocol: y\r\nX-Extra: 1\r\n"),
        "{out}"
    );
    assert_eq!(
        s.handle_input(ms(2), &input[head_len..]),
        input.len() - head_len
    );
    assert_eq!(
        events(&mut s),
        [
            Event::Open {
                protocol: Some("y".to_string())
            },
            msg(MessageKind::Binary, b"hi")
        ]
    );
    assert_eq!(
        s.accept(ms(3), AcceptOptions::default()),
        Err(CommandError::InvalidState)
    );
}

#[test]
fn manual_admission_respond_404_to_plain_http() {
    let mut s = Connection::server(cfg(), ms(0), Admission::Manual).expect("valid config");
    s.handle_input(ms(1), b"GET /missing HTTP/1.1\r\nHost: h\r\n\r\n");
    let ev = events(&mut s);
    let Some(Event::Request(req)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert!(!req.is_upgrade);
    assert_eq!(
        s.accept(ms(1), AcceptOptions::default()),
        Err(CommandError::NotAnUpgrade)
    );
    s.respond(ms(1), HttpResponse::text(404, "nope\n"))
        .expect("respond");
    let out = String::from_utf8(drain(&mut s, ms(1))).expect("ascii");
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nnope\n"));
    assert!(s.should_close_socket());
    assert_eq!(
        closed_info(&events(&mut s)).cause,
        CloseCause::HttpResponse(404)
    );
}

#[test]
fn manual_admission_timeout_while_undecided() {
    let mut s = Connection::server(cfg(), ms(0), Admission::Manual).expect("valid config");
    s.handle_input(ms(1), &upgrade_request());
    assert!(matches!(events(&mut s)[..], [Event::Request(_)]));
    s.handle_timeout(ms(3000));
    assert_eq!(
        closed_info(&events(&mut s)).cause,
        CloseCause::HandshakeTimeout
    );
    assert!(s.accept(ms(3001), AcceptOptions::default()).is_err());
}

// ----- timers ------------------------------------------------------------

fn heartbeat_cfg() -> Arc<Config> {
    Arc::new(Config {
        heartbeat_interval: Some(Duration::from_secs(1)),
        ..Config::default()
    })
}

#[test]
fn heartbeat_pings_and_drops_when_unanswered() {
    let mut s = open_server(heartbeat_cfg());
    assert_eq!(s.poll_timeout(), Some(ms(1000)));
    s.handle_timeout(ms(1000));
    assert_eq!(drain(&mut s, ms(1000)), [0x89, 0x00]);
    // Answered: the next interval pings again.
    s.handle_input(ms(1500), &cframe(0x8A, b""));
    assert_eq!(events(&mut s), [Event::Pong(Bytes::new())]);
    s.handle_timeout(ms(2000));
    assert_eq!(drain(&mut s, ms(2000)), [0x89, 0x00]);
    assert_eq!(s.state(), State::Open);
    // Unanswered for a whole interval: dropped (spec/websocket-peer.md §2.9).
    s.handle_timeout(ms(2999));
    assert_eq!(s.state(), State::Open);
    s.handle_timeout(ms(3000));
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_socket());
    assert_eq!(s.transmit_len(), 0);
    assert_eq!(
        closed_info(&events(&mut s)).cause,
        CloseCause::HeartbeatTimeout
    );
}

/// A heartbeat finding the application's ping still queued lets it serve
/// (any pong answers, spec §2.9) instead of replacing it: the application's
/// payload is never dropped.
#[test]
fn heartbeat_does_not_replace_a_waiting_application_ping() {
    let mut s = open_server(heartbeat_cfg());
    s.ping(ms(900), b"app").expect("ping queued");
    s.handle_timeout(ms(1000));
    let frames = parse_frames(&drain(&mut s, ms(1000)));
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(
        (frames[0].opcode(), &frames[0].payload[..]),
        (0x9, &b"app"[..])
    );
    // Its pong answers the heartbeat too.
    s.handle_input(ms(1500), &cframe(0x8A, b"app"));
    s.handle_timeout(ms(2000));
    assert_eq!(s.state(), State::Open);
    assert_eq!(drain(&mut s, ms(2000)), [0x89, 0x00]);
}

#[test]
fn heartbeat_between_pair_keeps_connection_alive() {
    let mut p = Pair::open(heartbeat_cfg());
    for _ in 0..10 {
        p.advance(Duration::from_millis(500));
    }
    assert_eq!(p.client.conn.state(), State::Open);
    assert_eq!(p.server.conn.state(), State::Open);
    assert!(
        p.client
            .events
            .iter()
            .filter(|e| matches!(e, Event::Pong(_)))
            .count()
            >= 4
    );
}

// ----- outbound limits ---------------------------------------------------

#[test]
fn too_large_and_queue_full_sends_hand_the_payload_back() {
    let config = Arc::new(Config {
        outbound_buffer_size: 100,
        max_queued_packets: 2,
        ..Config::default()
    });
    let mut s = open_server(config);
    let big = Bytes::from(vec![1u8; 101]);
    let err = s
        .send(ms(1), MessageKind::Binary, big.clone())
        .expect_err("too large");
    assert_eq!(err.kind, SendErrorKind::TooLarge);
    assert_eq!(err.payload, big);
    assert_eq!((s.buffered_amount(), s.transmit_len()), (0, 0));

    s.send(ms(1), MessageKind::Binary, Bytes::from(vec![2u8; 60]))
        .expect("fits");
    let before = (s.buffered_amount(), s.queued_messages(), s.transmit_len());
    let p = Bytes::from(vec![3u8; 41]);
    let err = s
        .send(ms(1), MessageKind::Binary, p.clone())
        .expect_err("bytes full");
    assert_eq!((err.kind, err.payload), (SendErrorKind::QueueFull, p));
    assert_eq!(
        before,
        (s.buffered_amount(), s.queued_messages(), s.transmit_len())
    );
    s.send(ms(1), MessageKind::Text, Bytes::from_static(b"ok"))
        .expect("fits");
    let err = s
        .send(ms(1), MessageKind::Text, Bytes::from_static(b"x"))
        .expect_err("count full");
    assert_eq!(err.kind, SendErrorKind::QueueFull);
    assert_eq!(s.queued_messages(), 2);
    // Draining frees the queue.
    drain(&mut s, ms(2));
    assert_eq!((s.buffered_amount(), s.queued_messages()), (0, 0));
    s.send(ms(2), MessageKind::Text, Bytes::from_static(b"x"))
        .expect("room again");
}

#[test]
fn client_send_is_masked_with_fresh_key() {
    let mut c = open_client(cfg());
    c.send(
        ms(1),
        MessageKind::Binary,
        Bytes::from_static(&[7, 3, 42, 0, 0, 0, 3, b'h', b'i']),
    )
    .expect("send");
    // spec/websocket-peer.md §6 masked client frame vector.
    assert_eq!(
        drain(&mut c, ms(1)),
        [
            0x82, 0x89, 0x37, 0xFA, 0x21, 0x3D, 0x30, 0xF9, 0x0B, 0x3D, 0x37, 0xFA, 0x22, 0x55,
            0x5E
        ]
    );
    assert_eq!(
        c.send_frame(&super::super::SharedFrame::unmasked_slice(
            crate::frame::OpCode::Binary,
            b"x"
        )),
        Err(SendErrorKind::WrongRole)
    );
}

// ----- inbound backpressure ---------------------------------------------

#[test]
fn inbound_backpressure_on_message_count() {
    let config = Arc::new(Config {
        max_queued_packets: 2,
        ..Config::default()
    });
    let mut s = open_server(config);
    let mut input = Vec::new();
    for i in 0..4u8 {
        input.extend(cframe(0x82, &[i; 4]));
    }
    let n = s.handle_input(ms(1), &input);
    assert_eq!(n, 2 * 10, "two frames of 6 + 4 bytes taken");
    assert!(!s.can_read());
    assert_eq!(s.unread_messages(), 2);
    // Offering again without reading changes nothing.
    assert_eq!(s.handle_input(ms(1), &input[n..]), 0);
    assert_eq!(s.poll_event(), Some(msg(MessageKind::Binary, &[0; 4])));
    assert!(s.can_read());
    let m = s.handle_input(ms(1), &input[n..]);
    assert_eq!(m, 10);
    assert!(!s.can_read());
    events(&mut s);
    assert_eq!(s.handle_input(ms(1), &input[n + m..]), 10);
}

#[test]
fn inbound_backpressure_on_bytes_never_drops() {
    let config = Arc::new(Config {
        inbound_buffer_size: 10,
        ..Config::default()
    });
    let mut s = open_server(config);
    let mut input = cframe(0x82, &[1; 6]);
    input.extend(cframe(0x82, &[2; 6]));
    input.extend(cframe(0x82, &[3; 6]));
    let n = s.handle_input(ms(1), &input);
    // First frame whole (12 bytes), the second's header and 4 payload bytes.
    assert_eq!(n, 12 + 6 + 4);
    assert!(!s.can_read());
    assert!(s.unread_bytes() + 4 <= 10);
    assert_eq!(s.poll_event(), Some(msg(MessageKind::Binary, &[1; 6])));
    assert!(s.can_read());
    let m = s.handle_input(ms(1), &input[n..]);
    assert!(m > 0);
    assert_eq!(s.poll_event(), Some(msg(MessageKind::Binary, &[2; 6])));
    let rest = &input[n + m..];
    assert_eq!(s.handle_input(ms(1), rest), rest.len());
    assert_eq!(s.poll_event(), Some(msg(MessageKind::Binary, &[3; 6])));
    assert_eq!(s.state(), State::Open);
    assert_eq!(
        s.transmit_len(),
        0,
        "no close: backpressure is not a failure"
    );
}

#[test]
fn set_unread_elsewhere_counts_against_the_limits() {
    let config = Arc::new(Config {
        inbound_buffer_size: 10,
        max_queued_packets: 3,
        ..Config::default()
    });
    let mut s = open_server(config);
    let f = cframe(0x82, &[9; 2]);
    // Bytes held elsewhere.
    s.set_unread_elsewhere(10, 0);
    assert_eq!(
        s.handle_input(ms(1), &f),
        6,
        "header taken, payload refused"
    );
    assert!(!s.can_read());
    s.set_unread_elsewhere(0, 0);
    assert!(s.can_read());
    assert_eq!(s.handle_input(ms(1), &f[6..]), 2);
    assert_eq!(s.poll_event(), Some(msg(MessageKind::Binary, &[9; 2])));
    // Messages held elsewhere.
    s.set_unread_elsewhere(0, 3);
    assert_eq!(s.handle_input(ms(1), &f), 0);
    assert!(!s.can_read());
    s.set_unread_elsewhere(0, 2);
    assert!(s.can_read());
    assert_eq!(s.handle_input(ms(1), &f), f.len());
}

// ----- pair --------------------------------------------------------------

#[test]
fn pair_close_from_client_follows_rfc_order() {
    let mut p = Pair::open(cfg());
    p.client
        .conn
        .send(p.now, MessageKind::Text, Bytes::from_static(b"hello"))
        .expect("send");
    p.client
        .conn
        .close(p.now, CloseCode(4001), "client done")
        .expect("close");
    p.pump();
    assert_eq!(p.server.messages().len(), 1);
    // RFC 6455 §7.1.1: the server closed TCP first, the client saw EOF.
    assert!(p.server.socket_closed);
    assert!(p.client.eof_delivered);
    assert!(p.client.socket_closed);
    for end in [&p.client, &p.server] {
        let info = end.closed().expect("closed");
        assert_eq!(info.code, CloseCode(4001));
        assert_eq!(info.reason, "client done");
        assert!(info.clean);
    }
}

#[test]
fn pair_close_from_server() {
    let mut p = Pair::open(cfg());
    p.server
        .conn
        .close(p.now, CloseCode::GOING_AWAY, "")
        .expect("close");
    p.pump();
    assert!(p.server.socket_closed && p.client.socket_closed);
    assert_eq!(p.client.closed().expect("closed").code, CloseCode(1001));
    assert_eq!(
        p.server.closed().expect("closed").cause,
        CloseCause::LocalClose
    );
    assert_eq!(p.client.conn.poll_timeout(), None);
}

#[test]
fn pair_chunked_one_byte_at_a_time() {
    let mut p = Pair::new(cfg(), cfg(), 3);
    p.chunk = 1;
    p.pump();
    for i in 0..20usize {
        let data = Bytes::from(vec![i as u8; i * 37]);
        p.client
            .conn
            .send(p.now, MessageKind::Binary, data.clone())
            .expect("send");
        p.server
            .conn
            .send(p.now, MessageKind::Binary, data)
            .expect("send");
    }
    p.pump();
    assert_eq!(p.client.messages().len(), 20);
    assert_eq!(p.server.messages().len(), 20);
    for (i, m) in p.server.messages().iter().enumerate() {
        assert_eq!(m.data.len(), i * 37);
    }
}

#[test]
fn abort_drops_everything() {
    let mut p = Pair::open(cfg());
    p.client
        .conn
        .send(p.now, MessageKind::Text, Bytes::from_static(b"x"))
        .expect("send");
    p.client.conn.abort(p.now);
    assert_eq!(p.client.conn.transmit_len(), 0);
    p.pump();
    assert_eq!(
        p.client.closed().expect("closed").cause,
        CloseCause::Aborted
    );
    assert_eq!(p.server.closed().expect("closed").cause, CloseCause::Eof);
    assert!(p.server.messages().is_empty());
}

#[test]
fn unread_pong_events_are_bounded_by_max_queued_packets() {
    let config = Arc::new(Config {
        max_queued_packets: 4,
        ..Config::default()
    });
    let mut s = open_server(config);
    let mut input = Vec::new();
    for i in 0..10u8 {
        input.extend(cframe(0x8A, &[i]));
    }
    // Each pong frame is 7 bytes; only four events may wait unread.
    let n = s.handle_input(ms(1), &input);
    assert_eq!(n, 4 * 7);
    assert!(!s.can_read());
    assert_eq!(s.unread_messages(), 4);
    assert_eq!(events(&mut s).len(), 4);
    assert!(s.can_read());
    assert_eq!(s.handle_input(ms(1), &input[n..]), 4 * 7);
    events(&mut s);
    assert_eq!(s.handle_input(ms(1), &input[2 * n..]), 2 * 7);
    assert_eq!(events(&mut s).len(), 2);
    assert_eq!(s.unread_messages(), 0);
}
