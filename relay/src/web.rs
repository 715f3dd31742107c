//! The demo page, embedded in the binary: a self-contained browser client
//! (no CDN, no build step) that joins a room and chats with Godot clients
//! through the relay using the engine's own bytes.
//!
//! The glue answers a plain `GET` (no WebSocket upgrade) with [`asset`].

use crate::rooms::RoomName;

/// `web/index.html`.
pub const INDEX_HTML: &str = include_str!("../web/index.html");
/// `web/app.js`.
pub const APP_JS: &str = include_str!("../web/app.js");
/// `web/style.css`.
pub const STYLE_CSS: &str = include_str!("../web/style.css");

/// Content type of HTML.
pub const HTML: &str = "text/html; charset=utf-8";
/// Content type of JavaScript.
pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
/// Content type of CSS.
pub const CSS: &str = "text/css; charset=utf-8";

/// The static response for a `GET` of `path` (query string ignored):
/// `(content type, body)`, or `None` for an unknown path (→ 404).
///
/// The page is served at `/`, `/index.html` and every room path
/// (`/room/NAME`, which pre-fills the room field).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.split_once('?').map_or(path, |(p, _query)| p);
    match path {
        "/" | "/index.html" => Some((HTML, INDEX_HTML.as_bytes())),
        "/app.js" => Some((JAVASCRIPT, APP_JS.as_bytes())),
        "/style.css" => Some((CSS, STYLE_CSS.as_bytes())),
        _ if RoomName::from_path(path).is_some() => Some((HTML, INDEX_HTML.as_bytes())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths() {
        let (ct, body) = asset("/").expect("index");
        assert_eq!(ct, HTML);
        assert!(std::str::from_utf8(body)
            .expect("utf-8")
            .contains("<script src=\"/app.js\">"));
        assert_eq!(asset("/index.html"), asset("/"));
        assert_eq!(asset("/?room=x"), asset("/"));
        assert_eq!(asset("/room/lobby"), asset("/"));
        assert_eq!(asset("/app.js").map(|a| a.0), Some(JAVASCRIPT));
        assert_eq!(asset("/style.css").map(|a| a.0), Some(CSS));
    }

    #[test]
    fn unknown_paths() {
        for p in [
            "",
            "/nope",
            "/app.js/",
            "/../Cargo.toml",
            "/room/",
            "/room/a b",
            "/stats",
        ] {
            assert_eq!(asset(p), None, "{p}");
        }
    }

    #[test]
    fn page_is_self_contained_and_speaks_the_protocol() {
        for body in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!body.contains("http://"), "no external resources");
            assert!(!body.contains("https://"), "no external resources");
            assert!(!body.contains("//cdn"), "no CDN");
        }
        // Referenced assets exist.
        assert!(INDEX_HTML.contains("href=\"/style.css\""));
        // The script uses binary frames, the id message and the SYS sub-commands.
        assert!(APP_JS.contains("binaryType = \"arraybuffer\""));
        assert!(APP_JS.contains("getInt32(0, true)"));
        assert!(APP_JS.contains("SYS_ADD_PEER = 1"));
        assert!(APP_JS.contains("SYS_DEL_PEER = 2"));
        assert!(APP_JS.contains("SYS_RELAY = 3"));
        assert!(APP_JS.contains("\"/room/\""));
        // The page shows whether permessage-deflate was negotiated.
        assert!(APP_JS.contains("sock.extensions"));
        assert!(INDEX_HTML.contains("id=\"compression\""));
    }
}
