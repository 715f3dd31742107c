//! SceneMultiplayer packet bytes: parsing what clients send, building what the
//! relay sends.
//!
//! The framing lives in one place in the workspace, wsmp-scene's
//! [`packet`](wsmp_scene::packet) module (spec/scene-multiplayer.md §1, §2,
//! §7, with the tests of every §7 vector); this module re-exports what the
//! relay uses.

pub use wsmp_scene::packet::{
    add_peer, auth_complete, auth_data, confirm_path, del_peer, id_message, parse, relay,
    relay_receivers, rewrite_relay_source, simplify_path_cache_id, Command, Packet, ParseError,
    Target, CONFIRM_PATH, MIN_RELAY_LEN, MIN_SIMPLIFY_PATH_LEN, SERVER_ID, SYS, SYS_ADD_PEER,
    SYS_AUTH, SYS_CMD_SIZE, SYS_DEL_PEER, SYS_RELAY,
};
