//! WebSocket frame opcodes (RFC 6455 §5.2, §11.8).

/// A frame opcode. Reserved values (3–7, 11–15) have no variant: they are
/// rejected by [`OpCode::from_u8`] and by header decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// `0x0`: continues a fragmented message.
    Continuation,
    /// `0x1`: first frame of a text (UTF-8) message.
    Text,
    /// `0x2`: first frame of a binary message.
    Binary,
    /// `0x8`: connection close (control).
    Close,
    /// `0x9`: ping (control).
    Ping,
    /// `0xA`: pong (control).
    Pong,
}

impl OpCode {
    /// The opcode for the low four bits `v`; `None` for reserved values
    /// (3–7, 11–15) and anything above 15.
    pub const fn from_u8(v: u8) -> Option<OpCode> {
        // RFC 6455 §5.2 (Opcode) / §11.8: 3-7 and 0xB-0xF are reserved.
        match v {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (Close, Ping, Pong).
    pub const fn is_control(self) -> bool {
        // RFC 6455 §5.5: control frames have the most significant opcode bit set.
        self.as_u8() & 0x8 != 0
    }

    /// Whether this is a data opcode (Continuation, Text, Binary).
    pub const fn is_data(self) -> bool {
        !self.is_control()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_values() {
        for v in 0u8..=255 {
            match OpCode::from_u8(v) {
                Some(op) => {
                    assert!(matches!(v, 0 | 1 | 2 | 8 | 9 | 10), "{v}");
                    assert_eq!(op.as_u8(), v);
                }
                None => assert!(!matches!(v, 0 | 1 | 2 | 8 | 9 | 10), "{v}"),
            }
        }
    }

    #[test]
    fn control_classification() {
        assert!(!OpCode::Continuation.is_control());
        assert!(!OpCode::Text.is_control());
        assert!(!OpCode::Binary.is_control());
        assert!(OpCode::Close.is_control());
        assert!(OpCode::Ping.is_control());
        assert!(OpCode::Pong.is_control());
        assert!(OpCode::Binary.is_data());
        assert!(!OpCode::Ping.is_data());
    }
}
