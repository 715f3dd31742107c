//! Per-player signed tokens (JWT, RFC 7519), verified with the
//! `jsonwebtoken` crate against `--jwt-key-file`.
//!
//! The key file is read as written, one trailing newline stripped, and its
//! kind is told by its content ([`JwtVerifier::from_key_bytes`]):
//! - a PEM public key (`-----BEGIN PUBLIC KEY-----` with an RSA or Ed25519
//!   key, or `-----BEGIN RSA PUBLIC KEY-----`) → RS256 or EdDSA;
//! - anything else → an HS256 shared secret (at least 32 bytes, RFC 7518 §3.2).
//!
//! Only the key's algorithm is accepted (a token cannot choose another one:
//! no `alg` confusion, RFC 8725 §3.1).
//!
//! Claims ([`Claims`]): `exp` required, checked with [`LEEWAY`] of clock
//! skew; `nbf` checked when present; optional `room` (the NAME of
//! `/room/NAME`: the only room the token admits, never the default room);
//! optional `sub` (the player's name, for logs).
//!
//! A token arrives in one of three carriers: an `Authorization: Bearer`
//! header ([`token_from_authorization`]) or a `?token=` query parameter
//! ([`token_from_query`]) of the upgrade request ([`token_from_request`]),
//! or the payload of the SceneMultiplayer auth message
//! ([`token_from_auth_message`]).

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::rooms::RoomName;

/// Clock skew tolerated on `exp` and `nbf` (issue 12: bounded, 30 s).
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Longest token accepted (bytes); longer ones are refused unparsed.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Shortest HS256 secret: RFC 7518 §3.2 requires a key of at least the hash
/// output size (256 bits).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// The kind of key in `--jwt-key-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// HMAC-SHA256 shared secret.
    Hs256,
    /// RSA public key (RSASSA-PKCS1-v1_5 SHA-256).
    Rs256,
    /// Ed25519 public key.
    EdDsa,
}

impl KeyKind {
    fn algorithm(self) -> Algorithm {
        match self {
            KeyKind::Hs256 => Algorithm::HS256,
            KeyKind::Rs256 => Algorithm::RS256,
            KeyKind::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The JWS `alg` name (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Hs256 => "HS256",
            KeyKind::Rs256 => "RS256",
            KeyKind::EdDsa => "EdDSA",
        }
    }
}

/// Why a key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// Why a token was rejected. [`TokenError::as_str`] is its metrics label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT (shape, base64, JSON), or longer than [`MAX_TOKEN_LEN`].
    Malformed,
    /// Signed with another algorithm than the key's.
    WrongAlgorithm,
    /// The signature does not verify with the key.
    BadSignature,
    /// No `exp` claim.
    MissingExp,
    /// `exp` is more than [`LEEWAY`] in the past.
    Expired,
    /// `nbf` is more than [`LEEWAY`] in the future.
    NotYetValid,
    /// The token names a room other than the requested one (or any room,
    /// when the default room was requested), or an invalid room name.
    WrongRoom,
}

impl TokenError {
    /// Stable short name (metrics label `outcome`, logs).
    pub const fn as_str(&self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::WrongAlgorithm => "token_wrong_algorithm",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::MissingExp => "token_missing_exp",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::WrongRoom => "token_wrong_room",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::WrongAlgorithm => "token signed with another algorithm",
            TokenError::BadSignature => "bad token signature",
            TokenError::MissingExp => "token without exp",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::WrongRoom => "token not valid for this room",
        })
    }
}

impl std::error::Error for TokenError {}

/// The claims the relay reads from a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// Expiry, seconds since the Unix epoch (RFC 7519 §4.1.4).
    pub exp: f64,
    /// The only room the token admits (`/room/NAME`), if any.
    pub room: Option<RoomName>,
    /// The player's name, for logs (RFC 7519 §4.1.2).
    pub sub: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    exp: Option<f64>,
    nbf: Option<f64>,
    room: Option<String>,
    sub: Option<String>,
}

/// Verifies tokens against one key.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    kind: KeyKind,
    validation: Validation,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        f.debug_struct("JwtVerifier")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Strips one trailing newline (`\n` or `\r\n`): key files are read as written.
pub fn strip_one_newline(bytes: &[u8]) -> &[u8] {
    let b = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if b.len() < bytes.len() {
        b.strip_suffix(b"\r").unwrap_or(b)
    } else {
        b
    }
}

impl JwtVerifier {
    /// A verifier for the key in `bytes` (the content of a key file, one
    /// trailing newline already stripped or not).
    pub fn from_key_bytes(bytes: &[u8]) -> Result<JwtVerifier, KeyError> {
        let bytes = strip_one_newline(bytes);
        let text = std::str::from_utf8(bytes).unwrap_or("");
        let (key, kind) = if text.trim_start().starts_with("-----BEGIN") {
            if text.contains("PRIVATE KEY-----") {
                return Err(KeyError(
                    "the file holds a private key; give the relay the public key (PEM)".into(),
                ));
            }
            if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
                (k, KeyKind::Rs256)
            } else if let Ok(k) = DecodingKey::from_ed_pem(bytes) {
                (k, KeyKind::EdDsa)
            } else {
                return Err(KeyError(
                    "not an RSA or Ed25519 public key in PEM form".into(),
                ));
            }
        } else {
            if bytes.len() < MIN_HMAC_SECRET_LEN {
                return Err(KeyError(format!(
                    "HS256 secret of {} bytes; at least {MIN_HMAC_SECRET_LEN} are required (RFC 7518 §3.2)",
                    bytes.len()
                )));
            }
            (DecodingKey::from_secret(bytes), KeyKind::Hs256)
        };
        let mut validation = Validation::new(kind.algorithm());
        // exp/nbf are checked against the caller's clock in `verify`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(JwtVerifier {
            key,
            kind,
            validation,
        })
    }

    /// [`from_key_bytes`](Self::from_key_bytes) reading `path`.
    pub fn from_file(path: &Path) -> Result<JwtVerifier, KeyError> {
        let bytes = std::fs::read(path)
            .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
        JwtVerifier::from_key_bytes(&bytes)
            .map_err(|e| KeyError(format!("{}: {e}", path.display())))
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Verifies `token` at time `now` for a client asking for `requested`.
    pub fn verify(
        &self,
        token: &str,
        now: SystemTime,
        requested: &RoomName,
    ) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let data =
            jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        TokenError::WrongAlgorithm
                    }
                    _ => TokenError::Malformed,
                }
            })?;
        let c = data.claims;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let leeway = LEEWAY.as_secs_f64();
        let exp = c.exp.ok_or(TokenError::MissingExp)?;
        if !exp.is_finite() || exp + leeway <= now {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = c.nbf {
            if !nbf.is_finite() || nbf - leeway > now {
                return Err(TokenError::NotYetValid);
            }
        }
        let room = match c.room {
            None => None,
            Some(name) => {
                let room = RoomName::named(&name).ok_or(TokenError::WrongRoom)?;
                // Issue 12: a room token admits only its room, never the default room.
                if &room != requested {
                    return Err(TokenError::WrongRoom);
                }
                Some(room)
            }
        };
        Ok(Claims {
            exp,
            room,
            sub: c.sub,
        })
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value
/// (RFC 6750 §2.1; the scheme is case-insensitive, RFC 7235 §2.1).
pub fn token_from_authorization(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// The `token` parameter of the query string of a request target
/// (`/room/a?token=…`). A JWT is base64url and dots (RFC 7515 §7.1), none of
/// which a browser percent-encodes, so the value is taken as it stands.
pub fn token_from_query(target: &str) -> Option<&str> {
    let query = target.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The token of an upgrade request: the `Authorization: Bearer` header
/// first, else the `?token=` query parameter.
pub fn token_from_request(req: &wsmp_tokio::Request) -> Option<&str> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .find_map(|(_, v)| token_from_authorization(v))
        .or_else(|| token_from_query(&req.path))
}

/// The token in a SceneMultiplayer auth message `07 00 <data>`
/// (spec/scene-multiplayer.md §2, command 7 sub 0; GDScript
/// `send_auth(1, token.to_utf8_buffer())`): the data as UTF-8, without
/// surrounding whitespace. `None` for the completion message `07 00`, a
/// packet that is not AUTH, or data that is not UTF-8.
pub fn token_from_auth_message(packet: &[u8]) -> Option<&str> {
    let data = packet.strip_prefix(&[0x07, 0x00])?;
    let s = std::str::from_utf8(data).ok()?.trim();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn at(offset: i64) -> i64 {
        1_700_000_000 + offset
    }

    fn sign(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, key).expect("sign")
    }

    fn room(name: &str) -> RoomName {
        RoomName::named(name).expect("room")
    }

    #[test]
    fn hs256_claims() {
        let v = JwtVerifier::from_key_bytes(&[SECRET, b"\n"].concat()).expect("key");
        assert_eq!(v.kind(), KeyKind::Hs256);
        let k = EncodingKey::from_secret(SECRET);
        let def = RoomName::default_room();

        let t = sign(Algorithm::HS256, &k, json!({"exp": at(60), "sub": "alice"}));
        let c = v.verify(&t, now(), &def).expect("valid");
        assert_eq!(c.sub.as_deref(), Some("alice"));
        assert_eq!(c.room, None);
        // A token without a room admits any room.
        assert!(v.verify(&t, now(), &room("lobby")).is_ok());

        // exp within the leeway still passes; beyond it fails.
        let t = sign(Algorithm::HS256, &k, json!({"exp": at(-29)}));
        assert!(v.verify(&t, now(), &def).is_ok());
        let t = sign(Algorithm::HS256, &k, json!({"exp": at(-31)}));
        assert_eq!(v.verify(&t, now(), &def), Err(TokenError::Expired));
        // Fractional NumericDate (RFC 7519 §2).
        let t = sign(Algorithm::HS256, &k, json!({"exp": 1_700_000_060.5}));
        assert!(v.verify(&t, now(), &def).is_ok());
        // exp required.
        let t = sign(Algorithm::HS256, &k, json!({"sub": "bob"}));
        assert_eq!(v.verify(&t, now(), &def), Err(TokenError::MissingExp));
        // nbf in the future beyond the leeway.
        let t = sign(
            Algorithm::HS256,
            &k,
            json!({"exp": at(600), "nbf": at(120)}),
        );
        assert_eq!(v.verify(&t, now(), &def), Err(TokenError::NotYetValid));
        let t = sign(Algorithm::HS256, &k, json!({"exp": at(600), "nbf": at(20)}));
        assert!(v.verify(&t, now(), &def).is_ok());

        // Room tokens.
        let t = sign(
            Algorithm::HS256,
            &k,
            json!({"exp": at(60), "room": "lobby"}),
        );
        assert_eq!(
            v.verify(&t, now(), &room("lobby")).expect("ok").room,
            Some(room("lobby"))
        );
        assert_eq!(
            v.verify(&t, now(), &room("other")),
            Err(TokenError::WrongRoom)
        );
        assert_eq!(v.verify(&t, now(), &def), Err(TokenError::WrongRoom));
        let t = sign(Algorithm::HS256, &k, json!({"exp": at(60), "room": "a b"}));
        assert_eq!(v.verify(&t, now(), &room("a")), Err(TokenError::WrongRoom));

        // Another secret.
        let other = EncodingKey::from_secret(b"another-secret-another-secret-!!");
        let t = sign(Algorithm::HS256, &other, json!({"exp": at(60)}));
        assert_eq!(v.verify(&t, now(), &def), Err(TokenError::BadSignature));
        // Another algorithm of the same family is not accepted.
        let t = sign(Algorithm::HS512, &k, json!({"exp": at(60)}));
        assert_eq!(v.verify(&t, now(), &def), Err(TokenError::WrongAlgorithm));
        // Tampered payload.
        let t = sign(Algorithm::HS256, &k, json!({"exp": at(60), "room": "a"}));
        let forged = sign(Algorithm::HS256, &other, json!({"exp": at(60)}));
        let parts: Vec<&str> = t.split('.').collect();
        let fparts: Vec<&str> = forged.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], fparts[1], parts[2]);
        assert_eq!(
            v.verify(&spliced, now(), &def),
            Err(TokenError::BadSignature)
        );
        // Garbage.
        for bad in ["", "abc", "a.b.c", "....", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(
                v.verify(bad, now(), &def),
                Err(TokenError::Malformed),
                "{bad:.20}"
            );
        }
        // alg none.
        let none = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(format!(r#"{{"exp":{}}}"#, at(60)).as_bytes())
        );
        assert!(v.verify(&none, now(), &def).is_err());
    }

    fn base64_url(b: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn short_secrets_and_private_keys_are_refused() {
        assert!(JwtVerifier::from_key_bytes(b"short\n").is_err());
        assert!(JwtVerifier::from_key_bytes(b"").is_err());
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
        let e = JwtVerifier::from_key_bytes(kp.serialize_pem().as_bytes()).expect_err("private");
        assert!(e.0.contains("private key"), "{e}");
        assert!(JwtVerifier::from_key_bytes(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
    }

    #[test]
    fn eddsa_public_key() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
        let v = JwtVerifier::from_key_bytes(kp.public_key_pem().as_bytes()).expect("key");
        assert_eq!(v.kind(), KeyKind::EdDsa);
        let k = EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).expect("signing key");
        let t = sign(
            Algorithm::EdDSA,
            &k,
            json!({"exp": at(60), "room": "r1", "sub": "p"}),
        );
        let c = v.verify(&t, now(), &room("r1")).expect("valid");
        assert_eq!(c.sub.as_deref(), Some("p"));
        let t = sign(Algorithm::EdDSA, &k, json!({"exp": at(-60)}));
        assert_eq!(v.verify(&t, now(), &room("r1")), Err(TokenError::Expired));
        // Another key pair's signature.
        let kp2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
        let k2 = EncodingKey::from_ed_pem(kp2.serialize_pem().as_bytes()).expect("signing key");
        let t = sign(Algorithm::EdDSA, &k2, json!({"exp": at(60)}));
        assert_eq!(
            v.verify(&t, now(), &room("r1")),
            Err(TokenError::BadSignature)
        );
        // HS256 with the public key bytes as secret (alg confusion) is refused.
        let confused = EncodingKey::from_secret(kp.public_key_pem().as_bytes());
        let t = sign(Algorithm::HS256, &confused, json!({"exp": at(60)}));
        assert_eq!(
            v.verify(&t, now(), &room("r1")),
            Err(TokenError::WrongAlgorithm)
        );
    }

    #[test]
    fn rs256_public_key() {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
        // A fresh 2048-bit key (the `rsa` crate is what jsonwebtoken's rust_crypto backend uses).
        let mut rng = rsa::rand_core::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa keygen");
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .expect("public pem");
        let private_pem = private
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .expect("private pem");
        let v = JwtVerifier::from_key_bytes(public_pem.as_bytes()).expect("key");
        assert_eq!(v.kind(), KeyKind::Rs256);
        let k = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("signing key");
        let t = sign(Algorithm::RS256, &k, json!({"exp": at(60), "room": "x"}));
        assert!(v.verify(&t, now(), &room("x")).is_ok());
        assert_eq!(
            v.verify(&t, now(), &RoomName::default_room()),
            Err(TokenError::WrongRoom)
        );
        let t = sign(Algorithm::RS256, &k, json!({"exp": at(-100)}));
        assert_eq!(v.verify(&t, now(), &room("x")), Err(TokenError::Expired));
        let mut bad = sign(Algorithm::RS256, &k, json!({"exp": at(60)}));
        let last = bad.pop().expect("char");
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            v.verify(&bad, now(), &room("x")),
            Err(TokenError::BadSignature | TokenError::Malformed)
        ));
    }

    #[test]
    fn carriers() {
        assert_eq!(
            token_from_authorization("Bearer abc.def.ghi"),
            Some("abc.def.ghi")
        );
        assert_eq!(token_from_authorization("bearer   abc "), Some("abc"));
        assert_eq!(token_from_authorization("Basic dXNlcjpwYXNz"), None);
        assert_eq!(token_from_authorization("Bearer "), None);
        assert_eq!(token_from_authorization("Bearer"), None);

        assert_eq!(token_from_query("/room/a?token=x.y.z"), Some("x.y.z"));
        assert_eq!(token_from_query("/?a=1&token=t&b=2"), Some("t"));
        assert_eq!(token_from_query("/?tokens=t"), None);
        assert_eq!(token_from_query("/?token="), None);
        assert_eq!(token_from_query("/token=t"), None);
        assert_eq!(token_from_query("/?token=t#frag"), Some("t"));

        let req = |path: &str, headers: &[(&str, &str)]| wsmp_tokio::Request {
            method: "GET".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
            protocols: vec![],
            is_upgrade: true,
        };
        assert_eq!(
            token_from_request(&req("/?token=q", &[("Authorization", "Bearer h")])),
            Some("h")
        );
        assert_eq!(token_from_request(&req("/?token=q", &[])), Some("q"));
        assert_eq!(
            token_from_request(&req("/?token=q", &[("authorization", "Basic x")])),
            Some("q")
        );
        assert_eq!(token_from_request(&req("/", &[])), None);

        assert_eq!(token_from_auth_message(b"\x07\x00abc.def"), Some("abc.def"));
        assert_eq!(token_from_auth_message(b"\x07\x00abc\n"), Some("abc"));
        assert_eq!(token_from_auth_message(b"\x07\x00"), None);
        assert_eq!(token_from_auth_message(b"\x07\x03abc"), None);
        assert_eq!(token_from_auth_message(b"\x07\x00\xff\xfe"), None);
    }

    #[test]
    fn newline_stripping() {
        assert_eq!(strip_one_newline(b"abc\n"), b"abc");
        assert_eq!(strip_one_newline(b"abc\r\n"), b"abc");
        assert_eq!(strip_one_newline(b"abc\n\n"), b"abc\n");
        assert_eq!(strip_one_newline(b"abc\r"), b"abc\r");
        assert_eq!(strip_one_newline(b"abc"), b"abc");
    }
}
