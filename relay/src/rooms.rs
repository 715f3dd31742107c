//! Rooms: which group of peers a connection joins, chosen by the path of its
//! WebSocket upgrade request.
//!
//! - `/` → the default room,
//! - `/room/NAME` with NAME 1–64 characters of `[A-Za-z0-9_-]` → room NAME,
//! - anything else → not found (HTTP 404).
//!
//! Slots and limits are in [`crate::admission`].
//!
//! A query string (`?…`) is ignored. Peers in different rooms never see each
//! other: ADD_PEER, DEL_PEER and RELAY stay inside a room.
//!
//! [`PathRules`] widen this for URLs that proxies and Godot users write
//! (`--path-prefix`, `--any-path-room`; the engine's own server accepts any
//! path):
//! - `--path-prefix /game`: the rooms live under the prefix — `/game`,
//!   `/game/` (default room) and `/game/room/NAME`; paths outside it are not
//!   rooms (unless `--any-path-room` takes them).
//! - `--any-path-room default`: every other path joins the default room.
//! - `--any-path-room path`: every other path joins the room named after
//!   it: the path (below the prefix, if any) without its leading and
//!   trailing `/` must be one valid room name (1–64 of `[A-Za-z0-9_-]`), so
//!   `/ws` and `/ws/` join room `ws` (the same room as `/room/ws`); paths
//!   with several segments, percent-escapes or other characters are not
//!   rooms (404), so two different paths never share a room by accident.

use std::fmt;
use std::str::FromStr;

/// Longest room name accepted.
pub const MAX_ROOM_NAME_LEN: usize = 64;

/// A room: the default room or a named one. Displayed as its request path
/// (`/` or `/room/NAME`), which is also its key in the stats.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RoomName(Option<Box<str>>);

impl RoomName {
    /// The default room (path `/`).
    pub const fn default_room() -> RoomName {
        RoomName(None)
    }

    /// A named room, if `name` is 1–64 characters of `[A-Za-z0-9_-]`.
    pub fn named(name: &str) -> Option<RoomName> {
        let valid = !name.is_empty()
            && name.len() <= MAX_ROOM_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| RoomName(Some(name.into())))
    }

    /// The room a request path designates, or `None` for a path that is not a room (→ 404).
    pub fn from_path(path: &str) -> Option<RoomName> {
        let path = path.split_once('?').map_or(path, |(p, _query)| p);
        if path == "/" {
            return Some(RoomName::default_room());
        }
        RoomName::named(path.strip_prefix("/room/")?)
    }

    /// The room's name; `None` for the default room.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether this is the default room.
    pub fn is_default(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("/"),
            Some(name) => write!(f, "/room/{name}"),
        }
    }
}

/// Where paths outside the room layout go (`--any-path-room`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnyPathRoom {
    /// Every other path joins the default room.
    Default,
    /// Every other path joins the room named after it.
    Path,
}

impl FromStr for AnyPathRoom {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(AnyPathRoom::Default),
            "path" => Ok(AnyPathRoom::Path),
            other => Err(format!("`{other}` is neither `default` nor `path`")),
        }
    }
}

impl fmt::Display for AnyPathRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnyPathRoom::Default => "default",
            AnyPathRoom::Path => "path",
        })
    }
}

/// A `--path-prefix` value: starts with `/`, no trailing `/` (`/` alone is
/// no prefix), no `?`, `#`, `%` or whitespace, no empty, `.` or `..` segment.
pub fn parse_path_prefix(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    if !s.starts_with('/') {
        return Err("must start with `/` (e.g. /game)".into());
    }
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || "?#%".contains(c);
    if trimmed.contains(bad_char) {
        return Err("must not contain `?`, `#`, `%` or whitespace".into());
    }
    if trimmed
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("must not contain empty, `.` or `..` segments".into());
    }
    Ok(trimmed.to_string())
}

/// How request paths map to rooms (`--path-prefix`, `--any-path-room`).
/// The default value keeps [`RoomName::from_path`]'s mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRules {
    /// Rooms live under this prefix (no trailing `/`); empty = at the root.
    pub prefix: String,
    /// Where other paths go; `None` = nowhere (404).
    pub any_path: Option<AnyPathRoom>,
}

impl PathRules {
    /// Rules for a prefix (as checked by [`parse_path_prefix`]; `None` or
    /// `/` = at the root) and an `--any-path-room` choice.
    pub fn new(prefix: Option<&str>, any_path: Option<AnyPathRoom>) -> PathRules {
        PathRules {
            prefix: prefix.unwrap_or("").trim_end_matches('/').to_string(),
            any_path,
        }
    }

    /// The room a request target designates (query and fragment ignored),
    /// or `None` for a path that is not a room (→ 404).
    pub fn room_for(&self, target: &str) -> Option<RoomName> {
        let path = target.split(['?', '#']).next().unwrap_or("");
        let below = if self.prefix.is_empty() {
            Some(path)
        } else {
            match path.strip_prefix(self.prefix.as_str()) {
                Some("") => Some("/"),
                Some(rest) if rest.starts_with('/') => Some(rest),
                _ => None,
            }
        };
        if let Some(rel) = below {
            if let Some(room) = RoomName::from_path(rel) {
                return Some(room);
            }
        }
        match self.any_path? {
            AnyPathRoom::Default => Some(RoomName::default_room()),
            AnyPathRoom::Path => {
                let rel = below.unwrap_or(path);
                let name = rel.strip_prefix('/')?;
                if name.is_empty() {
                    return Some(RoomName::default_room());
                }
                RoomName::named(name.strip_suffix('/').unwrap_or(name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_default_room() {
        assert_eq!(RoomName::from_path("/"), Some(RoomName::default_room()));
        assert_eq!(RoomName::from_path("/?x=1"), Some(RoomName::default_room()));
        assert_eq!(RoomName::default_room().to_string(), "/");
        assert!(RoomName::default_room().is_default());
    }

    #[test]
    fn named_rooms() {
        let r = RoomName::from_path("/room/lobby-1_A").expect("valid");
        assert_eq!(r.name(), Some("lobby-1_A"));
        assert_eq!(r.to_string(), "/room/lobby-1_A");
        assert_eq!(
            RoomName::from_path("/room/lobby?token=x"),
            RoomName::named("lobby")
        );
        let long = "a".repeat(64);
        assert!(RoomName::from_path(&format!("/room/{long}")).is_some());
    }

    #[test]
    fn bad_paths_are_not_rooms() {
        let too_long = format!("/room/{}", "a".repeat(65));
        for p in [
            "",
            "/room",
            "/room/",
            "/room/a/b",
            "/room/a/",
            "/room/a b",
            "/room/%41",
            "/room/é",
            "/room/a.b",
            "/rooms/a",
            "//",
            "/index.html",
            "room/a",
            "http://host/",
            too_long.as_str(),
        ] {
            assert_eq!(RoomName::from_path(p), None, "{p:?}");
        }
    }

    #[test]
    fn default_rules_keep_todays_mapping() {
        let r = PathRules::default();
        for p in [
            "/",
            "/?x",
            "/room/a",
            "/room/a?token=t",
            "/nope",
            "/room/",
            "/game",
        ] {
            assert_eq!(r.room_for(p), RoomName::from_path(p), "{p}");
        }
    }

    #[test]
    fn path_prefix() {
        let r = PathRules::new(Some("/game"), None);
        let def = Some(RoomName::default_room());
        assert_eq!(r.room_for("/game"), def);
        assert_eq!(r.room_for("/game/"), def);
        assert_eq!(r.room_for("/game/?token=x"), def);
        assert_eq!(r.room_for("/game?token=x"), def);
        assert_eq!(r.room_for("/game/room/lobby"), RoomName::named("lobby"));
        for p in [
            "/",
            "/room/lobby",
            "/gamex",
            "/gamex/room/a",
            "/game/room/",
            "/game/x",
            "/other/game",
        ] {
            assert_eq!(r.room_for(p), None, "{p}");
        }
        // A prefix with several segments; trailing slash in the flag ignored.
        let r = PathRules::new(Some("/api/ws/"), None);
        assert_eq!(r.room_for("/api/ws"), def);
        assert_eq!(r.room_for("/api/ws/room/a"), RoomName::named("a"));
        assert_eq!(r.room_for("/api"), None);
    }

    #[test]
    fn any_path_default() {
        let r = PathRules::new(None, Some(AnyPathRoom::Default));
        let def = Some(RoomName::default_room());
        assert_eq!(r.room_for("/ws"), def);
        assert_eq!(r.room_for("/a/b/c?x"), def);
        assert_eq!(r.room_for("/room/"), def);
        assert_eq!(r.room_for("/room/lobby"), RoomName::named("lobby"));
        let r = PathRules::new(Some("/game"), Some(AnyPathRoom::Default));
        assert_eq!(r.room_for("/game/room/x"), RoomName::named("x"));
        assert_eq!(r.room_for("/elsewhere"), def);
        assert_eq!(r.room_for("/game/anything"), def);
    }

    #[test]
    fn any_path_named_after_the_path() {
        let r = PathRules::new(None, Some(AnyPathRoom::Path));
        assert_eq!(r.room_for("/ws"), RoomName::named("ws"));
        assert_eq!(r.room_for("/ws/"), RoomName::named("ws"));
        assert_eq!(r.room_for("/ws?token=t"), RoomName::named("ws"));
        assert_eq!(r.room_for("/Lobby_2-x"), RoomName::named("Lobby_2-x"));
        assert_eq!(r.room_for("/"), Some(RoomName::default_room()));
        assert_eq!(r.room_for("/room/ws"), RoomName::named("ws"));
        for p in ["/a/b", "/a%20b", "/a.b", "/é", "//", "", "/room/a/b"] {
            assert_eq!(r.room_for(p), None, "{p}");
        }
        let long = format!("/{}", "a".repeat(65));
        assert_eq!(r.room_for(&long), None);
        // Below a prefix the name is taken below it.
        let r = PathRules::new(Some("/game"), Some(AnyPathRoom::Path));
        assert_eq!(r.room_for("/game/ws"), RoomName::named("ws"));
        assert_eq!(r.room_for("/game"), Some(RoomName::default_room()));
        assert_eq!(r.room_for("/ws"), RoomName::named("ws"));
    }

    #[test]
    fn prefix_values() {
        assert_eq!(parse_path_prefix("/game").as_deref(), Ok("/game"));
        assert_eq!(parse_path_prefix("/game/").as_deref(), Ok("/game"));
        assert_eq!(parse_path_prefix("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(parse_path_prefix("/").as_deref(), Ok(""));
        for bad in [
            "game", "", "/a b", "/a?x", "/a//b", "/a/../b", "/%2e", "/a/./b",
        ] {
            assert!(parse_path_prefix(bad).is_err(), "{bad}");
        }
        assert_eq!("path".parse::<AnyPathRoom>(), Ok(AnyPathRoom::Path));
        assert_eq!("default".parse::<AnyPathRoom>(), Ok(AnyPathRoom::Default));
        assert!("x".parse::<AnyPathRoom>().is_err());
        assert_eq!(AnyPathRoom::Path.to_string(), "path");
    }
}
