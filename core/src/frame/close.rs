//! Close frame payloads and status codes (RFC 6455 §5.5.1, §7.4).

use core::fmt;

/// A close status code (RFC 6455 §7.4). Any `u16` can be represented; use
/// the predicates to decide whether it may be received or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: endpoint going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: data type that cannot be accepted.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed abnormally, without a close frame (never on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (e.g. invalid UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: service restart (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: TLS handshake failure (never on the wire).
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether a peer may send this code: 1000–1003, 1007–1014 and
    /// 3000–4999. 0–999, 1004–1006, 1015, 1016–2999 and 5000+ are not.
    pub const fn is_valid_on_receipt(self) -> bool {
        // RFC 6455 §7.4.1/§7.4.2 + IANA "WebSocket Close Code Number Registry"
        // (1012–1014 registered; 1004 reserved; 1005/1006/1015 never on the wire).
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether we may put this code on the wire: the codes valid on receipt
    /// (never 1005, 1006 or 1015).
    pub const fn is_sendable(self) -> bool {
        // RFC 6455 §7.4.1: 1005, 1006 and 1015 MUST NOT be sent in a close frame.
        self.is_valid_on_receipt()
    }

    /// Whether a Redot/Godot peer accepts this code: 1000–1003, 1007–1011 and
    /// 3000–4999. The engine answers 1012–1014 with 1002.
    pub const fn is_godot_safe(self) -> bool {
        // spec/websocket-peer.md §2.7: codes accepted from the peer (1012 → 1002 verified).
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }

    /// The code to send a Redot/Godot peer instead of `self`: `self` when
    /// [`is_godot_safe`](Self::is_godot_safe), otherwise the nearest code the
    /// engine accepts (the reason text is kept by the callers):
    /// 1012 service restart → 1001 going away ("a server going down",
    /// RFC 6455 §7.4.1); 1013 try again later → 1008 policy violation (the
    /// RFC's generic refusal); 1014 bad gateway → 1011 internal error; any
    /// other unsafe code → 1008. Multiplayer hosts apply it to every close
    /// frame they send ([`Connection::set_godot_safe_close`](crate::Connection::set_godot_safe_close)).
    pub const fn to_godot_safe(self) -> CloseCode {
        // spec/websocket-peer.md §2.7: the engine answers other codes with 1002.
        if self.is_godot_safe() {
            return self;
        }
        match self.0 {
            1012 => CloseCode::GOING_AWAY,
            1014 => CloseCode::INTERNAL_ERROR,
            _ => CloseCode::POLICY_VIOLATION,
        }
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        CloseCode(v)
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> Self {
        c.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Longest close reason that fits a control frame: 125 − 2 code bytes
/// (RFC 6455 §5.5).
pub const MAX_CLOSE_REASON: usize = 123;

/// A received close payload is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseError {
    /// Payload of length 1 (RFC 6455 §5.5.1): fail with 1002.
    OneByte,
    /// Status code not valid on receipt (RFC 6455 §7.4): fail with 1002.
    InvalidCode(u16),
    /// Reason is not UTF-8 (RFC 6455 §5.5.1, §8.1): fail with 1007.
    InvalidUtf8,
}

impl CloseError {
    /// The code to fail the connection with.
    pub const fn close_code(self) -> CloseCode {
        match self {
            CloseError::OneByte | CloseError::InvalidCode(_) => CloseCode::PROTOCOL_ERROR,
            CloseError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
        }
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::OneByte => f.write_str("close payload of one byte"),
            CloseError::InvalidCode(c) => write!(f, "invalid close code {c}"),
            CloseError::InvalidUtf8 => f.write_str("close reason is not valid UTF-8"),
        }
    }
}

impl core::error::Error for CloseError {}

/// A close payload cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseEncodeError {
    /// The reason is longer than [`MAX_CLOSE_REASON`] bytes; carries its length.
    ReasonTooLong(usize),
    /// The code may not be sent ([`CloseCode::is_sendable`] is false).
    UnsendableCode(CloseCode),
}

impl fmt::Display for CloseEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseEncodeError::ReasonTooLong(n) => write!(
                f,
                "close reason of {n} bytes exceeds {MAX_CLOSE_REASON} bytes"
            ),
            CloseEncodeError::UnsendableCode(c) => write!(f, "close code {c} may not be sent"),
        }
    }
}

impl core::error::Error for CloseEncodeError {}

/// Parse a received close payload (RFC 6455 §5.5.1, §7.4).
///
/// An empty payload gives `Ok(None)` ("no status", reported as 1005 locally).
/// Otherwise the first two bytes are a big-endian code, which must be valid
/// on receipt, and the rest a UTF-8 reason.
///
/// ```
/// use wsmp_core::frame::{parse_close_payload, CloseCode};
/// assert_eq!(parse_close_payload(b"\x03\xE8bye"), Ok(Some((CloseCode::NORMAL, "bye"))));
/// assert_eq!(parse_close_payload(b""), Ok(None));
/// ```
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, CloseError> {
    match payload {
        [] => Ok(None),
        // RFC 6455 §5.5.1: if there is a body, its first two bytes are the code.
        [_] => Err(CloseError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            // RFC 6455 §7.4: an endpoint receiving an invalid code fails with 1002.
            if !code.is_valid_on_receipt() {
                return Err(CloseError::InvalidCode(code.0));
            }
            // RFC 6455 §5.5.1: the reason is UTF-8; §8.1: invalid → 1007.
            let reason = core::str::from_utf8(reason).map_err(|_| CloseError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Encode `code` and `reason` into `out` (RFC 6455 §5.5.1); returns the
/// payload length, `2 + reason.len()`.
///
/// Fails if the reason is longer than [`MAX_CLOSE_REASON`] bytes (see
/// [`truncate_reason`]) or the code is not sendable. To send a close frame
/// with no status, use an empty payload instead.
///
/// ```
/// use wsmp_core::frame::{encode_close_payload, CloseCode};
/// let mut out = [0u8; 125];
/// let n = encode_close_payload(CloseCode::NORMAL, "bye", &mut out).unwrap();
/// assert_eq!(&out[..n], b"\x03\xE8bye");
/// ```
pub fn encode_close_payload(
    code: CloseCode,
    reason: &str,
    out: &mut [u8; 125],
) -> Result<usize, CloseEncodeError> {
    // RFC 6455 §7.4.1: 1005/1006/1015 (and unregistered codes) are not sent.
    if !code.is_sendable() {
        return Err(CloseEncodeError::UnsendableCode(code));
    }
    let r = reason.as_bytes();
    // RFC 6455 §5.5: control payloads are at most 125 bytes.
    if r.len() > MAX_CLOSE_REASON {
        return Err(CloseEncodeError::ReasonTooLong(r.len()));
    }
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..2 + r.len()].copy_from_slice(r);
    Ok(2 + r.len())
}

/// The longest prefix of `reason` that is at most [`MAX_CLOSE_REASON`] bytes
/// and ends on a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn code_validity_table_0_to_5000() {
        for c in 0u16..=5000 {
            let code = CloseCode(c);
            let on_receipt = (1000..=1003).contains(&c)
                || (1007..=1014).contains(&c)
                || (3000..=4999).contains(&c);
            assert_eq!(code.is_valid_on_receipt(), on_receipt, "{c}");
            assert_eq!(code.is_sendable(), on_receipt, "{c}");
            let godot = (1000..=1003).contains(&c)
                || (1007..=1011).contains(&c)
                || (3000..=4999).contains(&c);
            assert_eq!(code.is_godot_safe(), godot, "{c}");
            // Godot-safe codes are a subset of the valid ones.
            assert!(!godot || on_receipt);
        }
        for c in [5001u16, 9999, u16::MAX] {
            assert!(!CloseCode(c).is_valid_on_receipt());
            assert!(!CloseCode(c).is_godot_safe());
        }
    }

    #[test]
    fn godot_safe_fallbacks() {
        for c in 0u16..=u16::MAX {
            let code = CloseCode(c);
            let safe = code.to_godot_safe();
            assert!(safe.is_godot_safe(), "{c}");
            if code.is_godot_safe() {
                assert_eq!(safe, code);
            }
        }
        assert_eq!(
            CloseCode::SERVICE_RESTART.to_godot_safe(),
            CloseCode::GOING_AWAY
        );
        assert_eq!(
            CloseCode::TRY_AGAIN_LATER.to_godot_safe(),
            CloseCode::POLICY_VIOLATION
        );
        assert_eq!(
            CloseCode::BAD_GATEWAY.to_godot_safe(),
            CloseCode::INTERNAL_ERROR
        );
        assert_eq!(CloseCode(2000).to_godot_safe(), CloseCode::POLICY_VIOLATION);
    }

    #[test]
    fn named_codes() {
        assert_eq!(CloseCode::NORMAL.0, 1000);
        assert_eq!(CloseCode::GOING_AWAY.0, 1001);
        assert_eq!(CloseCode::PROTOCOL_ERROR.0, 1002);
        assert_eq!(CloseCode::UNSUPPORTED_DATA.0, 1003);
        assert_eq!(CloseCode::NO_STATUS.0, 1005);
        assert_eq!(CloseCode::ABNORMAL.0, 1006);
        assert_eq!(CloseCode::INVALID_PAYLOAD.0, 1007);
        assert_eq!(CloseCode::POLICY_VIOLATION.0, 1008);
        assert_eq!(CloseCode::MESSAGE_TOO_BIG.0, 1009);
        assert_eq!(CloseCode::MANDATORY_EXTENSION.0, 1010);
        assert_eq!(CloseCode::INTERNAL_ERROR.0, 1011);
        assert_eq!(CloseCode::SERVICE_RESTART.0, 1012);
        assert_eq!(CloseCode::TRY_AGAIN_LATER.0, 1013);
        assert_eq!(CloseCode::BAD_GATEWAY.0, 1014);
        assert_eq!(CloseCode::TLS_HANDSHAKE.0, 1015);
        for c in [
            CloseCode::NO_STATUS,
            CloseCode::ABNORMAL,
            CloseCode::TLS_HANDSHAKE,
        ] {
            assert!(!c.is_sendable());
        }
        for c in [
            CloseCode::SERVICE_RESTART,
            CloseCode::TRY_AGAIN_LATER,
            CloseCode::BAD_GATEWAY,
        ] {
            assert!(c.is_sendable());
            assert!(!c.is_godot_safe());
        }
    }

    #[test]
    fn spec6_close_1000_bye_payload() {
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0x62, 0x79, 0x65]),
            Ok(Some((CloseCode::NORMAL, "bye")))
        );
        let mut out = [0u8; 125];
        let n = encode_close_payload(CloseCode::NORMAL, "bye", &mut out).expect("ok");
        assert_eq!(&out[..n], &[0x03, 0xE8, 0x62, 0x79, 0x65]);
    }

    #[test]
    fn spec6_close_reply_1009_88_02_03_f1() {
        let mut out = [0u8; 125];
        let n = encode_close_payload(CloseCode::MESSAGE_TOO_BIG, "", &mut out).expect("ok");
        assert_eq!(&out[..n], &[0x03, 0xF1]);
        assert_eq!(
            parse_close_payload(&[0x03, 0xF1]),
            Ok(Some((CloseCode::MESSAGE_TOO_BIG, "")))
        );
    }

    #[test]
    fn spec6_close_reply_1002_88_02_03_ea() {
        let mut out = [0u8; 125];
        let n = encode_close_payload(CloseCode::PROTOCOL_ERROR, "", &mut out).expect("ok");
        assert_eq!(&out[..n], &[0x03, 0xEA]);
        // Godot's reply to a received 1012.
        assert_eq!(
            parse_close_payload(&[0x03, 0xF4]).map_err(CloseError::close_code),
            Ok(Some((CloseCode::SERVICE_RESTART, "")))
        );
        assert!(!CloseCode::SERVICE_RESTART.is_godot_safe());
    }

    #[test]
    fn spec6_close_reply_1007_88_02_03_ef() {
        let mut out = [0u8; 125];
        let n = encode_close_payload(CloseCode::INVALID_PAYLOAD, "", &mut out).expect("ok");
        assert_eq!(&out[..n], &[0x03, 0xEF]);
        let err = parse_close_payload(&[0x03, 0xE8, 0xFF]).expect_err("bad utf-8");
        assert_eq!(err, CloseError::InvalidUtf8);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[0x03]), Err(CloseError::OneByte));
        assert_eq!(CloseError::OneByte.close_code(), CloseCode::PROTOCOL_ERROR);
        for c in [
            0u16,
            999,
            1004,
            1005,
            1006,
            1015,
            1016,
            2999,
            5000,
            u16::MAX,
        ] {
            let err = parse_close_payload(&c.to_be_bytes()).expect_err("invalid");
            assert_eq!(err, CloseError::InvalidCode(c));
            assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        }
        // Invalid code is reported before invalid UTF-8.
        assert_eq!(
            parse_close_payload(&[0x03, 0xED, 0xFF]),
            Err(CloseError::InvalidCode(1005))
        );
        // Surrogate in the reason.
        assert_eq!(
            parse_close_payload(b"\x03\xE8\xED\xA0\x80"),
            Err(CloseError::InvalidUtf8)
        );
    }

    #[test]
    fn encode_errors_and_limits() {
        let mut out = [0u8; 125];
        let max = "x".repeat(MAX_CLOSE_REASON);
        assert_eq!(
            encode_close_payload(CloseCode::NORMAL, &max, &mut out),
            Ok(125)
        );
        let long = "x".repeat(MAX_CLOSE_REASON + 1);
        assert_eq!(
            encode_close_payload(CloseCode::NORMAL, &long, &mut out),
            Err(CloseEncodeError::ReasonTooLong(124))
        );
        for c in [
            CloseCode::NO_STATUS,
            CloseCode::ABNORMAL,
            CloseCode::TLS_HANDSHAKE,
            CloseCode(999),
        ] {
            assert_eq!(
                encode_close_payload(c, "", &mut out),
                Err(CloseEncodeError::UnsendableCode(c))
            );
        }
    }

    #[test]
    fn truncate_reason_on_char_boundary() {
        assert_eq!(truncate_reason("short"), "short");
        let s = "é".repeat(70); // 140 bytes, 2 per char
        let t = truncate_reason(&s);
        assert_eq!(t.len(), 122);
        let s = "x".repeat(200);
        assert_eq!(truncate_reason(&s).len(), 123);
        let s = std::format!("{}{}", "x".repeat(121), "😀"); // emoji straddles 123
        assert_eq!(truncate_reason(&s).len(), 121);
    }

    #[test]
    fn errors_display() {
        let errs: [&dyn core::error::Error; 5] = [
            &CloseError::OneByte,
            &CloseError::InvalidCode(5),
            &CloseError::InvalidUtf8,
            &CloseEncodeError::ReasonTooLong(200),
            &CloseEncodeError::UnsendableCode(CloseCode(1005)),
        ];
        for e in errs {
            assert!(!std::format!("{e}").is_empty());
        }
    }

    proptest! {
        #[test]
        fn prop_encode_parse_round_trip(
            code in prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999],
            reason in "\\PC{0,60}",
        ) {
            let reason = truncate_reason(&reason);
            let mut out = [0u8; 125];
            let n = encode_close_payload(CloseCode(code), reason, &mut out).expect("valid");
            prop_assert_eq!(parse_close_payload(&out[..n]), Ok(Some((CloseCode(code), reason))));
        }

        #[test]
        fn prop_parse_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..130)) {
            let r = parse_close_payload(&payload);
            match r {
                Ok(None) => prop_assert!(payload.is_empty()),
                Ok(Some((c, reason))) => {
                    prop_assert!(c.is_valid_on_receipt());
                    prop_assert_eq!(reason.as_bytes(), &payload[2..]);
                }
                Err(e) => prop_assert!(matches!(e.close_code().0, 1002 | 1007)),
            }
            let _unused: Vec<u8> = Vec::new();
        }
    }
}
