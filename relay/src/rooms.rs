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

use std::fmt;

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
}
