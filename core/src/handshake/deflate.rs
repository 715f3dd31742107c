//! `Sec-WebSocket-Extensions` (RFC 6455 §9.1) and the negotiation of
//! permessage-deflate (RFC 7692 §5, §7.1): parsing offers and responses,
//! choosing the server's answer, validating it on the client, and writing
//! both header values. No allocation.
//!
//! Native Redot/Godot peers never offer an extension (spec/websocket-peer.md
//! §2.5), so with them none of this shows on the wire: a server answers
//! `Sec-WebSocket-Extensions` only to a client that offered it.

use core::fmt;

use super::{is_token_byte, trim, Out};

/// The extension's name (RFC 7692 §7).
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// What an endpoint offers (client) or accepts (server), and how it
/// compresses. Used as `Config::permessage_deflate`.
///
/// For a **server**: every valid `permessage-deflate` offer is accepted
/// (the first one it can serve fully, RFC 7692 §5); the answer adds
/// `server_no_context_takeover` / `client_no_context_takeover` when set
/// here, and limits the windows to the values here.
/// For a **client**: the offer is `permessage-deflate; client_max_window_bits`
/// plus each parameter set here (a window below 15 is requested with its
/// value), and the server's answer must honour what was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateConfig {
    /// The server compresses every message from an empty window
    /// (RFC 7692 §7.1.1.1). Frees the server's compressor between messages,
    /// and lets a server compress a broadcast once for every receiver that
    /// negotiated the same window. Default false.
    pub server_no_context_takeover: bool,
    /// The client compresses every message from an empty window
    /// (RFC 7692 §7.1.1.2). Frees the server's decompressor between
    /// messages. Default false.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window the server compresses with, as log2 of its size:
    /// 9..=15 (zlib cannot produce raw DEFLATE with an 8-bit window).
    /// Default 15 (32 KiB).
    pub server_max_window_bits: u8,
    /// Largest LZ77 window the client compresses with: 8..=15 (a client
    /// told to use 8 sends uncompressed messages). Default 15.
    pub client_max_window_bits: u8,
    /// Messages shorter than this many bytes are sent uncompressed.
    /// Default 128.
    pub compression_threshold: usize,
    /// zlib compression level 1 (fastest) ..= 9 (smallest). Default 6.
    pub compression_level: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            compression_threshold: 128,
            compression_level: 6,
        }
    }
}

/// The parameters in force on a connection once permessage-deflate is
/// negotiated (RFC 7692 §7.1; a window bits parameter that was not sent
/// means 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server compresses each message from an empty window.
    pub server_no_context_takeover: bool,
    /// The client compresses each message from an empty window.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window is at most 2^this bytes (8..=15).
    pub server_max_window_bits: u8,
    /// The client's LZ77 window is at most 2^this bytes (8..=15).
    pub client_max_window_bits: u8,
}

/// Why a `permessage-deflate` element is not acceptable (RFC 7692 §5: an
/// offer is then declined; a response fails the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamError {
    /// A parameter this extension does not define (for that direction).
    Unknown,
    /// A parameter given twice.
    Duplicate,
    /// A value that is not allowed: window bits other than `8`..`15`
    /// written without leading zeros, a value on a flag, a missing value.
    InvalidValue,
    /// Client: the response does not honour the offer (a window larger
    /// than requested, a requested parameter missing, a parameter not
    /// offered).
    NotOffered,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamError::Unknown => "unknown permessage-deflate parameter",
            ParamError::Duplicate => "repeated permessage-deflate parameter",
            ParamError::InvalidValue => "invalid permessage-deflate parameter value",
            ParamError::NotOffered => "permessage-deflate response does not match the offer",
        })
    }
}

impl core::error::Error for ParamError {}

// ----- generic extension lists (RFC 6455 §9.1) -----------------------------

/// One element of a `Sec-WebSocket-Extensions` list:
/// `extension-token *( ";" extension-param )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The extension token, trimmed.
    pub name: &'a [u8],
    /// Everything after the first `;` (the parameters), untrimmed.
    params: &'a [u8],
}

impl<'a> Extension<'a> {
    /// The parameters in order: `(name, value)`, the value without quotes
    /// (RFC 6455 §9.1: `token [ "=" (token | quoted-string) ]`). A value
    /// that is quoted but holds a backslash escape, or a malformed
    /// parameter, is reported as `Err(())`.
    pub fn params(&self) -> impl Iterator<Item = Result<(&'a [u8], Option<&'a [u8]>), ()>> + 'a {
        split_outside_quotes(self.params, b';')
            .map(trim)
            .filter(|p| !p.is_empty())
            .map(parse_param)
    }
}

/// The elements of one `Sec-WebSocket-Extensions` header value, in order
/// (split on commas outside quoted strings; empty elements skipped, RFC 7230
/// §7). Call it once per header line: repeated headers form one list
/// (RFC 6455 §9.1).
pub fn extension_list(value: &[u8]) -> impl Iterator<Item = Extension<'_>> {
    split_outside_quotes(value, b',')
        .map(trim)
        .filter(|e| !e.is_empty())
        .map(|element| {
            let (name, params) = match split_outside_quotes(element, b';').next() {
                Some(first) if first.len() < element.len() => {
                    (first, element.get(first.len() + 1..).unwrap_or(&[]))
                }
                _ => (element, &[][..]),
            };
            Extension {
                name: trim(name),
                params,
            }
        })
}

/// Splits on `sep` outside double-quoted strings (RFC 7230 §3.2.6).
fn split_outside_quotes(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    core::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = s.get(i + 1..);
                return s.get(..i);
            }
        }
        rest = None;
        Some(s)
    })
}

fn parse_param(p: &[u8]) -> Result<(&[u8], Option<&[u8]>), ()> {
    let Some(eq) = p.iter().position(|&b| b == b'=') else {
        return if p.iter().all(|&b| is_token_byte(b)) {
            Ok((p, None))
        } else {
            Err(())
        };
    };
    let name = trim(p.get(..eq).unwrap_or(&[]));
    let value = trim(p.get(eq + 1..).unwrap_or(&[]));
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(());
    }
    // RFC 6455 §9.1: the value is a token or a quoted-string.
    let value = match value {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') && !inner.contains(&b'"') => inner,
        v if !v.is_empty() && v.iter().all(|&b| is_token_byte(b)) => v,
        _ => return Err(()),
    };
    Ok((name, Some(value)))
}

// ----- permessage-deflate parameters ---------------------------------------

/// A `client_max_window_bits` parameter in an offer: absent, without a
/// value ("I can limit my window"), or with one (RFC 7692 §7.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientBitsOffer {
    Absent,
    Any,
    Max(u8),
}

/// A parsed `permessage-deflate` element (offer or response shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Element {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: ClientBitsOffer,
}

/// RFC 7692 §7.1.2.1/§7.1.2.2: "a decimal integer value without leading
/// zeroes between 8 to 15, inclusive".
fn window_bits(value: &[u8]) -> Result<u8, ParamError> {
    match value {
        [d @ b'8'..=b'9'] => Ok(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Ok(10 + (d - b'0')),
        _ => Err(ParamError::InvalidValue),
    }
}

/// Parses the parameters of one element. `response`: the element is a
/// server's answer (then `client_max_window_bits` needs a value).
fn parse_element(ext: &Extension<'_>, response: bool) -> Result<Element, ParamError> {
    let mut e = Element {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: None,
        client_max_window_bits: ClientBitsOffer::Absent,
    };
    let mut seen = [false; 4];
    for param in ext.params() {
        let (name, value) = param.map_err(|()| ParamError::InvalidValue)?;
        let index = if name.eq_ignore_ascii_case(b"server_no_context_takeover") {
            0
        } else if name.eq_ignore_ascii_case(b"client_no_context_takeover") {
            1
        } else if name.eq_ignore_ascii_case(b"server_max_window_bits") {
            2
        } else if name.eq_ignore_ascii_case(b"client_max_window_bits") {
            3
        } else {
            // RFC 7692 §5: a parameter not defined for this extension.
            return Err(ParamError::Unknown);
        };
        // RFC 7692 §5: "multiple extension parameters with the same name".
        if core::mem::replace(&mut seen[index], true) {
            return Err(ParamError::Duplicate);
        }
        match (index, value) {
            // RFC 7692 §7.1.1.1, §7.1.1.2: these have no value.
            (0, None) => e.server_no_context_takeover = true,
            (1, None) => e.client_no_context_takeover = true,
            // RFC 7692 §7.1.2.1: server_max_window_bits always has a value.
            (2, Some(v)) => e.server_max_window_bits = Some(window_bits(v)?),
            // RFC 7692 §7.1.2.2: no value allowed in an offer only.
            (3, None) if !response => e.client_max_window_bits = ClientBitsOffer::Any,
            (3, Some(v)) => e.client_max_window_bits = ClientBitsOffer::Max(window_bits(v)?),
            _ => return Err(ParamError::InvalidValue),
        }
    }
    Ok(e)
}

/// A server's answer to an offer: the parameters in force and the header
/// value to send ([`write`](Self::write)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateAnswer {
    /// The parameters in force once the `101` is sent.
    pub params: DeflateParams,
    /// Write `server_max_window_bits` (the offer had it, or ours is < 15).
    write_server_bits: bool,
    /// Write `client_max_window_bits` (the offer allowed it and we limit).
    write_client_bits: bool,
}

impl DeflateAnswer {
    /// Writes the header value, e.g.
    /// `permessage-deflate; server_no_context_takeover` (RFC 7692 §7).
    fn write(&self, w: &mut Out<'_>) -> Result<(), super::BufferTooSmall> {
        let p = &self.params;
        w.put_str(PERMESSAGE_DEFLATE)?;
        if p.server_no_context_takeover {
            w.put(b"; server_no_context_takeover")?;
        }
        if p.client_no_context_takeover {
            w.put(b"; client_no_context_takeover")?;
        }
        if self.write_server_bits {
            w.put(b"; server_max_window_bits=")?;
            w.put_uint(u64::from(p.server_max_window_bits))?;
        }
        if self.write_client_bits {
            w.put(b"; client_max_window_bits=")?;
            w.put_uint(u64::from(p.client_max_window_bits))?;
        }
        Ok(())
    }

    /// The header value as bytes in `out`; returns its length.
    pub fn write_value(&self, out: &mut [u8]) -> Result<usize, super::BufferTooSmall> {
        let mut w = Out::new(out);
        self.write(&mut w)?;
        Ok(w.len())
    }
}

/// Server: chooses the answer to the client's offers (RFC 7692 §5, §7.1).
///
/// `values` are the `Sec-WebSocket-Extensions` header values of the request,
/// in order. Offers of other extensions are ignored (we support none).
/// A `permessage-deflate` offer with an unknown, repeated or invalid
/// parameter is declined and the next one is considered (RFC 7692 §5).
/// The first valid offer that lets us compress is chosen; an offer that
/// asks for an 8-bit server window (zlib cannot produce one) is chosen
/// only when no other is valid, and then we never compress (sending
/// uncompressed messages is always allowed, RFC 7692 §6). `None`: answer
/// without the header.
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Option<DeflateAnswer> {
    let mut fallback = None;
    for value in values {
        for ext in extension_list(value) {
            if !ext.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE.as_bytes()) {
                continue;
            }
            let Ok(offer) = parse_element(&ext, false) else {
                // RFC 7692 §5: decline an offer with bad parameters.
                continue;
            };
            let answer = answer_offer(&offer, config);
            if answer.params.server_max_window_bits >= 9 {
                return Some(answer);
            }
            fallback = fallback.or(Some(answer));
        }
    }
    fallback
}

fn answer_offer(offer: &Element, config: &DeflateConfig) -> DeflateAnswer {
    let ours = config.server_max_window_bits.clamp(9, 15);
    // RFC 7692 §7.1.2.1: answer with the same or a smaller value than offered;
    // we may limit our window even when it was not offered.
    let (server_bits, write_server_bits) = match offer.server_max_window_bits {
        Some(n) => (n.min(ours), true),
        None => (ours, ours < 15),
    };
    let cap = config.client_max_window_bits.clamp(8, 15);
    // RFC 7692 §7.1.2.2: only an offer with client_max_window_bits lets us
    // limit the client's window, to at most the offered value.
    let (client_bits, write_client_bits) = match offer.client_max_window_bits {
        ClientBitsOffer::Absent => (15, false),
        ClientBitsOffer::Any => (cap, cap < 15),
        ClientBitsOffer::Max(n) => (n.min(cap), true),
    };
    DeflateAnswer {
        params: DeflateParams {
            // RFC 7692 §7.1.1.1: accept the request, or impose it ourselves.
            server_no_context_takeover: offer.server_no_context_takeover
                || config.server_no_context_takeover,
            // RFC 7692 §7.1.1.2: echo the client's hint, or impose it.
            client_no_context_takeover: offer.client_no_context_takeover
                || config.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        },
        write_server_bits,
        write_client_bits,
    }
}

/// Client: writes the offer's header value,
/// `permessage-deflate; client_max_window_bits[=N]` plus the parameters
/// `config` requests (RFC 7692 §7.1). Returns the length written.
pub fn write_offer(config: &DeflateConfig, out: &mut [u8]) -> Result<usize, super::BufferTooSmall> {
    let mut w = Out::new(out);
    w.put_str(PERMESSAGE_DEFLATE)?;
    // RFC 7692 §7.1.2.2: we can limit our window to whatever the server asks.
    w.put(b"; client_max_window_bits")?;
    let client_bits = config.client_max_window_bits.clamp(8, 15);
    if client_bits < 15 {
        w.put(b"=")?;
        w.put_uint(u64::from(client_bits))?;
    }
    if config.server_no_context_takeover {
        w.put(b"; server_no_context_takeover")?;
    }
    if config.client_no_context_takeover {
        w.put(b"; client_no_context_takeover")?;
    }
    let server_bits = config.server_max_window_bits.clamp(8, 15);
    if server_bits < 15 {
        w.put(b"; server_max_window_bits=")?;
        w.put_uint(u64::from(server_bits))?;
    }
    Ok(w.len())
}

/// Client: checks the server's answer to the offer [`write_offer`] made
/// from `config` (RFC 7692 §5, §7.1) and returns the parameters in force.
/// Any error fails the connection.
pub fn accept_response(
    ext: &Extension<'_>,
    config: &DeflateConfig,
) -> Result<DeflateParams, ParamError> {
    let r = parse_element(ext, true)?;
    // RFC 7692 §7.1.1.1: a requested server_no_context_takeover must be accepted.
    if config.server_no_context_takeover && !r.server_no_context_takeover {
        return Err(ParamError::NotOffered);
    }
    let asked_server = config.server_max_window_bits.clamp(8, 15);
    let server_bits = match r.server_max_window_bits {
        // RFC 7692 §7.1.2.1: the same or a smaller value than requested.
        Some(n) if asked_server < 15 && n > asked_server => return Err(ParamError::NotOffered),
        Some(n) => n,
        // RFC 7692 §7.1.2.1: a request is accepted only by answering it.
        None if asked_server < 15 => return Err(ParamError::NotOffered),
        None => 15,
    };
    let offered_client = config.client_max_window_bits.clamp(8, 15);
    let client_bits = match r.client_max_window_bits {
        // RFC 7692 §7.1.2.2: not above the value we offered.
        ClientBitsOffer::Max(n) if n > offered_client => return Err(ParamError::NotOffered),
        ClientBitsOffer::Max(n) => n,
        // Our own limit holds even when the server says nothing.
        ClientBitsOffer::Absent | ClientBitsOffer::Any => offered_client,
    };
    Ok(DeflateParams {
        server_no_context_takeover: r.server_no_context_takeover,
        // RFC 7692 §7.1.1.2: our own hint binds us too.
        client_no_context_takeover: r.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(
        offer: &str,
        config: &DeflateConfig,
    ) -> Option<(DeflateParams, heapless::String<256>)> {
        let a = negotiate([offer.as_bytes()], config)?;
        let mut buf = [0u8; 256];
        let n = a.write_value(&mut buf).unwrap();
        let s = core::str::from_utf8(&buf[..n]).unwrap();
        Some((a.params, heapless::String::try_from(s).unwrap()))
    }

    fn params(snct: bool, cnct: bool, sb: u8, cb: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
        }
    }

    #[test]
    fn list_parsing_with_quotes_and_whitespace() {
        let v = b" foo ; a=1 ;b=\"x,y\" , permessage-deflate;client_max_window_bits , ,bar";
        let exts: heapless::Vec<Extension<'_>, 8> = extension_list(v).collect();
        assert_eq!(exts.len(), 3);
        assert_eq!(exts[0].name, b"foo");
        let p: heapless::Vec<_, 4> = exts[0].params().collect();
        assert_eq!(
            p.as_slice(),
            &[
                Ok((&b"a"[..], Some(&b"1"[..]))),
                Ok((&b"b"[..], Some(&b"x,y"[..])))
            ]
        );
        assert_eq!(exts[1].name, b"permessage-deflate");
        assert_eq!(
            exts[1].params().next(),
            Some(Ok((&b"client_max_window_bits"[..], None)))
        );
        assert_eq!(exts[2].name, b"bar");
        assert_eq!(exts[2].params().count(), 0);
    }

    #[test]
    fn browser_offer_default_server() {
        // Chromium / Firefox send exactly this.
        let (p, s) = answer(
            "permessage-deflate; client_max_window_bits",
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(p, params(false, false, 15, 15));
        assert_eq!(s.as_str(), "permessage-deflate");
    }

    #[test]
    fn shared_server_imposes_no_context_takeover() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let (p, s) = answer("permessage-deflate; client_max_window_bits", &config).unwrap();
        assert_eq!(p, params(true, false, 15, 15));
        assert_eq!(s.as_str(), "permessage-deflate; server_no_context_takeover");
    }

    #[test]
    fn autobahn_13_offers() {
        let c = DeflateConfig::default();
        // 13.1: the default offer of Autobahn's client.
        let (p, s) = answer(
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            &c,
        )
        .unwrap();
        assert_eq!(p, params(false, true, 15, 15));
        assert_eq!(s.as_str(), "permessage-deflate; client_no_context_takeover");
        // 13.5: server_no_context_takeover and a 9-bit server window.
        let (p, s) = answer(
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
             server_no_context_takeover; server_max_window_bits=9",
            &c,
        )
        .unwrap();
        assert_eq!(p, params(true, true, 9, 15));
        assert_eq!(
            s.as_str(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9"
        );
        // 13.7: several offers, the first is taken.
        let a = negotiate(
            [
                &b"permessage-deflate; server_no_context_takeover; server_max_window_bits=9"[..],
                b"permessage-deflate; server_no_context_takeover, permessage-deflate",
            ],
            &c,
        )
        .unwrap();
        assert_eq!(a.params, params(true, false, 9, 15));
    }

    #[test]
    fn window_limits_never_exceed_the_offer() {
        let c = DeflateConfig {
            server_max_window_bits: 12,
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let (p, s) = answer("permessage-deflate; client_max_window_bits", &c).unwrap();
        assert_eq!(p, params(false, false, 12, 10));
        assert_eq!(
            s.as_str(),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"
        );
        // An offered client value caps ours; an offer without the parameter
        // cannot be limited (RFC 7692 §7.1.2.2).
        let (p, _) = answer("permessage-deflate; client_max_window_bits=9", &c).unwrap();
        assert_eq!(p.client_max_window_bits, 9);
        let (p, s) = answer("permessage-deflate", &c).unwrap();
        assert_eq!(p.client_max_window_bits, 15);
        assert!(!s.contains("client_max_window_bits"));
        let (p, _) = answer("permessage-deflate; server_max_window_bits=14", &c).unwrap();
        assert_eq!(p.server_max_window_bits, 12);
        let (p, _) = answer("permessage-deflate; server_max_window_bits=10", &c).unwrap();
        assert_eq!(p.server_max_window_bits, 10);
    }

    #[test]
    fn invalid_or_duplicate_parameters_decline_the_offer() {
        let c = DeflateConfig::default();
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; unknown_param",
            "permessage-deflate; x=\"a\\\"b\"",
            "permessage-deflate; =1",
            "x-other-extension",
        ] {
            assert_eq!(answer(bad, &c), None, "{bad}");
        }
        // Quoted values are tokens after unquoting (RFC 6455 §9.1).
        let (p, _) = answer("permessage-deflate; server_max_window_bits=\"10\"", &c).unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        // A declined offer makes way for the next one.
        let a = negotiate(
            [&b"permessage-deflate; bogus, x-foo, permessage-deflate; server_no_context_takeover"[..]],
            &c,
        )
        .unwrap();
        assert!(a.params.server_no_context_takeover);
        // Across header lines too.
        let a = negotiate(
            [&b"permessage-deflate; bogus"[..], b"PerMessage-Deflate"],
            &c,
        );
        assert_eq!(a.map(|a| a.params), Some(params(false, false, 15, 15)));
    }

    #[test]
    fn eight_bit_server_window_accepted_only_as_a_last_resort() {
        let c = DeflateConfig::default();
        let (p, s) = answer("permessage-deflate; server_max_window_bits=8", &c).unwrap();
        assert_eq!(p.server_max_window_bits, 8);
        assert_eq!(s.as_str(), "permessage-deflate; server_max_window_bits=8");
        let a = negotiate(
            [&b"permessage-deflate; server_max_window_bits=8, permessage-deflate"[..]],
            &c,
        )
        .unwrap();
        assert_eq!(a.params.server_max_window_bits, 15);
    }

    fn client_check(response: &str, config: &DeflateConfig) -> Result<DeflateParams, ParamError> {
        let ext = extension_list(response.as_bytes()).next().unwrap();
        accept_response(&ext, config)
    }

    #[test]
    fn client_offer_text() {
        let mut buf = [0u8; 200];
        let n = write_offer(&DeflateConfig::default(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"permessage-deflate; client_max_window_bits");
        let c = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        let n = write_offer(&c, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"permessage-deflate; client_max_window_bits=12; server_no_context_takeover; \
client_no_context_takeover; server_max_window_bits=10"
        );
        // The server's answer to our own offer is accepted.
        let a = negotiate([&buf[..n]], &DeflateConfig::default()).unwrap();
        let mut ans = [0u8; 200];
        let m = a.write_value(&mut ans).unwrap();
        let ext = extension_list(&ans[..m]).next().unwrap();
        assert_eq!(accept_response(&ext, &c), Ok(a.params));
        assert_eq!(a.params, params(true, true, 10, 12));
    }

    #[test]
    fn client_validates_responses() {
        let c = DeflateConfig::default();
        assert_eq!(
            client_check("permessage-deflate", &c),
            Ok(params(false, false, 15, 15))
        );
        assert_eq!(
            client_check(
                "permessage-deflate; client_max_window_bits=9; client_no_context_takeover",
                &c
            ),
            Ok(params(false, true, 15, 9))
        );
        assert_eq!(
            client_check("permessage-deflate; server_max_window_bits=10", &c),
            Ok(params(false, false, 10, 15))
        );
        // client_max_window_bits in a response needs a value (RFC 7692 §7.1.2.2).
        assert_eq!(
            client_check("permessage-deflate; client_max_window_bits", &c),
            Err(ParamError::InvalidValue)
        );
        assert_eq!(
            client_check("permessage-deflate; foo", &c),
            Err(ParamError::Unknown)
        );
        assert_eq!(
            client_check(
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                &c
            ),
            Err(ParamError::Duplicate)
        );
        // What we asked for must be granted.
        let asked = DeflateConfig {
            server_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        assert_eq!(
            client_check("permessage-deflate; server_max_window_bits=10", &asked),
            Err(ParamError::NotOffered)
        );
        assert_eq!(
            client_check("permessage-deflate; server_no_context_takeover", &asked),
            Err(ParamError::NotOffered)
        );
        assert_eq!(
            client_check(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
                &asked
            ),
            Err(ParamError::NotOffered)
        );
        assert_eq!(
            client_check(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; \
                 client_max_window_bits=13",
                &asked
            ),
            Err(ParamError::NotOffered)
        );
        assert_eq!(
            client_check(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                &asked
            ),
            Ok(params(true, false, 9, 12))
        );
    }
}
