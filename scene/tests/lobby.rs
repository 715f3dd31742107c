//! The `lobby` example against emulated Godot 4 clients over real sockets
//! (127.0.0.1): the WebSocket transport is wsmp-tokio's client (the engine's
//! wire protocol), the SceneMultiplayer bytes the clients send are written out
//! here by hand, after the engine captures in ../shared/spec/scene-rpc-vectors.md
//! and variant-vectors.json — never produced by wsmp-scene's encoders.
//!
//! Every line of the lobby contract (issue 13), plus malformed packets and
//! unknown methods leaving the server and the other clients unaffected. The
//! last tests run the example binary itself (CLI.md: listening line, SIGTERM
//! exits 0, bad arguments exit 2).
#![allow(missing_docs, clippy::unwrap_used, unreachable_pub)]

#[path = "../examples/lobby/game.rs"]
mod game;

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use wsmp_scene::multiplayer::{Config, DropReason, Stats};
use wsmp_scene::tokio::Server;
use wsmp_tokio::{HostEvent, MultiplayerPeer, PeerId, Target};

const STEP: Duration = Duration::from_secs(10);

// --- bytes, by hand -------------------------------------------------------

/// md5("announcechatechoechoedjoinmovemovedsaywelcome"): the Lobby script's
/// RPC checksum (computed outside this crate).
const CHECKSUM: &[u8; 32] = b"a339e0002a84861b09a71df8c1b2ae48";

// Method ids: positions in the sorted names.
const ANNOUNCE: u8 = 0;
const CHAT: u8 = 1;
const ECHO: u8 = 2;
const ECHOED: u8 = 3;
const JOIN: u8 = 4;
const MOVE: u8 = 5;
const MOVED: u8 = 6;
const SAY: u8 = 7;
const WELCOME: u8 = 8;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Plain String Variant: type 4, length, UTF-8, zero padding.
fn string(s: &str) -> Vec<u8> {
    let mut v = vec![4, 0, 0, 0];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// Plain 32-bit int Variant.
fn int_plain(i: i32) -> Vec<u8> {
    [&[2, 0, 0, 0][..], &i.to_le_bytes()].concat()
}

/// Compressed int as multiplayer_api.cpp writes it (meta 0x02 | mode << 6).
fn int_c(i: i64) -> Vec<u8> {
    if let Ok(x) = i8::try_from(i) {
        vec![0x02, x as u8]
    } else if let Ok(x) = i16::try_from(i) {
        [&[0x42][..], &x.to_le_bytes()].concat()
    } else if let Ok(x) = i32::try_from(i) {
        [&[0x82][..], &x.to_le_bytes()].concat()
    } else {
        [&[0xc2][..], &i.to_le_bytes()].concat()
    }
}

fn vector2(x: f32, y: f32) -> Vec<u8> {
    [&[5, 0, 0, 0][..], &x.to_le_bytes(), &y.to_le_bytes()].concat()
}

/// The players Dictionary: {id: name, …} in join order, plain entries.
fn players(entries: &[(i32, &str)]) -> Vec<u8> {
    let mut v = vec![0x1b, 0, 0, 0];
    v.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (id, name) in entries {
        v.extend(int_plain(*id));
        v.extend(string(name));
    }
    v
}

/// SIMPLIFY_PATH for Lobby with the client's cache id (rows 1a/6a layout).
fn offer(cache_id: u32) -> Vec<u8> {
    [
        &[1][..],
        CHECKSUM,
        &[0],
        &cache_id.to_le_bytes(),
        b"Lobby\0",
    ]
    .concat()
}

/// An RPC with the inline path (rows 1b/6b layout): meta 0x20 with a count,
/// 0xa0 byte-only / no arguments.
fn call_inline(method: u8, args: Option<(u8, &[u8])>) -> Vec<u8> {
    let (meta, body) = match args {
        Some((count, bytes)) => (0x20u8, [&[count][..], bytes].concat()),
        None => (0xa0, Vec::new()),
    };
    let ofs = (6 + body.len()) as u32 | 0x8000_0000;
    [
        &[meta][..],
        &ofs.to_le_bytes(),
        &[method],
        &body,
        b"Lobby\0",
    ]
    .concat()
}

/// An RPC by the client's cache id (rows 2–10 layout).
fn call_cached(cache_id: u8, method: u8, args: Option<(u8, &[u8])>) -> Vec<u8> {
    match args {
        Some((count, bytes)) => [&[0x00, cache_id, method, count][..], bytes].concat(),
        None => vec![0x80, cache_id, method],
    }
}

fn raw_call(cache_id: u8, method: u8, data: &[u8]) -> Vec<u8> {
    [&[0x80, cache_id, method][..], data].concat()
}

/// A server RPC, read by hand: the node must be Lobby (inline path, or the
/// server's cache id 1); returns (method, byte-only flag, body after the ids).
fn read_server_rpc(p: &[u8]) -> (u8, bool, Vec<u8>) {
    let meta = p[0];
    assert_eq!(meta & 7, 0, "not an RPC: {p:02x?}");
    let raw = meta & 0x80 != 0;
    match (meta >> 4) & 3 {
        0 => {
            assert_eq!(p[1], 1, "server cache id");
            (p[2], raw, p[3..].to_vec())
        }
        2 => {
            let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
            assert!(id & 0x8000_0000 != 0, "32-bit id without path: {p:02x?}");
            let ofs = (id & 0x7FFF_FFFF) as usize;
            assert_eq!(&p[ofs..], b"Lobby\0");
            (p[5], raw, p[6..ofs].to_vec())
        }
        m => panic!("node id mode {m}"),
    }
}

// --- the server and the clients ------------------------------------------

struct Running {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Stats>,
}

async fn start_lobby() -> Running {
    let scene = game::scene(Config::default()).unwrap();
    let mut server = Server::bind(&["127.0.0.1:0".parse().unwrap()], scene).unwrap();
    let addr = server.local_addrs()[0];
    let (stop, mut stopped) = oneshot::channel();
    let done = tokio::spawn(async move {
        loop {
            tokio::select! {
                e = server.next_event() => match e {
                    Some(e) => game::on_event(&mut server, e),
                    None => break,
                },
                _ = &mut stopped => break,
            }
        }
        let stats = server.scene().stats().clone();
        server.shutdown(Duration::from_secs(1)).await;
        stats
    });
    Running { addr, stop, done }
}

impl Running {
    async fn stop(self) -> Stats {
        let _ = self.stop.send(());
        self.done.await.unwrap()
    }
}

/// An emulated Godot client: the engine's transport, SceneMultiplayer by hand.
struct Client {
    peer: MultiplayerPeer,
    id: i32,
    /// Answer the server's path offers with CONFIRM_PATH (as engines do).
    confirm: bool,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, path: &str) -> Client {
        let mut peer = MultiplayerPeer::new();
        peer.create_client(&format!("ws://{addr}{path}"), None)
            .await
            .unwrap();
        match tokio::time::timeout(STEP, peer.next_event()).await.unwrap() {
            Some(HostEvent::PeerConnected(p)) if p == PeerId::SERVER => {}
            other => panic!("before the id: {other:?}"),
        }
        let id = peer.get_unique_id();
        Client {
            peer,
            id,
            confirm: true,
        }
    }

    fn send(&self, bytes: &[u8]) {
        self.peer
            .send(Target::Peer(PeerId::SERVER), Bytes::copy_from_slice(bytes))
            .unwrap();
    }

    /// The next packet from the server, answering path offers on the way.
    async fn recv(&mut self) -> Vec<u8> {
        loop {
            let p = self.next_packet(STEP).await.expect("a packet");
            if p.first() == Some(&1) {
                // The server's offer: checksum of the Lobby names, cache id, path.
                assert_eq!(&p[1..33], CHECKSUM);
                assert_eq!(&p[38..], b"Lobby\0");
                if self.confirm {
                    self.send(&[&[2, 1][..], &p[34..38]].concat());
                }
                continue;
            }
            return p;
        }
    }

    async fn next_packet(&mut self, wait: Duration) -> Option<Vec<u8>> {
        loop {
            match tokio::time::timeout(wait, self.peer.next_event()).await {
                Err(_) => return None,
                Ok(Some(HostEvent::Packet { from, data })) => {
                    assert_eq!(from, PeerId::SERVER);
                    return Some(data.to_vec());
                }
                Ok(Some(HostEvent::PeerDisconnected { .. })) | Ok(None) => {
                    panic!("client {} lost the server", self.id)
                }
                Ok(Some(_)) => {}
            }
        }
    }

    /// Nothing more arrives within a short while.
    async fn quiet(&mut self) {
        if let Some(p) = self.next_packet(Duration::from_millis(300)).await {
            panic!("client {} got an unexpected packet {p:02x?}", self.id);
        }
    }

    /// Expects a server RPC: method and body (count + args, or raw bytes).
    async fn expect_rpc(&mut self, method: u8, body: &[u8]) {
        let p = self.recv().await;
        let (m, _, got) = read_server_rpc(&p);
        assert_eq!((m, got.as_slice()), (method, body), "packet {p:02x?}");
    }

    async fn expect_add_peer(&mut self, id: i32) {
        assert_eq!(self.recv().await, [&[7, 1][..], &id.to_le_bytes()].concat());
    }

    /// Offers Lobby as cache id 1 and joins with `name`.
    async fn join(&mut self, name: &str) {
        self.send(&offer(1));
        assert_eq!(self.recv().await, vec![2, 1, 1, 0, 0, 0], "offer confirmed");
        self.send(&call_cached(1, JOIN, Some((1, &string(name)))));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// --- the contract ---------------------------------------------------------

#[test]
fn join_welcomes_the_caller_announces_to_the_others_and_a_second_join_renames() {
    rt().block_on(async {
        let lobby = start_lobby().await;
        let mut a = Client::connect(lobby.addr, "/").await;
        // The first call before the offer is confirmed: inline path (row 1b form).
        a.send(&offer(1));
        assert_eq!(a.recv().await, vec![2, 1, 1, 0, 0, 0]);
        a.send(&call_inline(JOIN, Some((1, &string("ann")))));
        let welcome_a = [int_c(a.id.into()), players(&[(a.id, "ann")])].concat();
        a.expect_rpc(WELCOME, &[&[2][..], &welcome_a].concat())
            .await;

        let mut b = Client::connect(lobby.addr, "/").await;
        a.expect_add_peer(b.id).await;
        b.expect_add_peer(a.id).await;
        b.join("bob").await;
        let welcome_b = [int_c(b.id.into()), players(&[(a.id, "ann"), (b.id, "bob")])].concat();
        b.expect_rpc(WELCOME, &[&[2][..], &welcome_b].concat())
            .await;
        let announce = [int_c(b.id.into()), string("bob")].concat();
        a.expect_rpc(ANNOUNCE, &[&[2][..], &announce].concat())
            .await;

        // Second join from b: renamed, announced again.
        b.send(&call_cached(1, JOIN, Some((1, &string("bobby")))));
        let welcome_b = [
            int_c(b.id.into()),
            players(&[(a.id, "ann"), (b.id, "bobby")]),
        ]
        .concat();
        b.expect_rpc(WELCOME, &[&[2][..], &welcome_b].concat())
            .await;
        let announce = [int_c(b.id.into()), string("bobby")].concat();
        a.expect_rpc(ANNOUNCE, &[&[2][..], &announce].concat())
            .await;
        a.quiet().await;
        b.quiet().await;
        let stats = lobby.stop().await;
        assert_eq!(stats.dropped_total(), 0, "{stats:?}");
    });
}

#[test]
fn say_chats_to_every_joined_client_and_move_to_the_others() {
    rt().block_on(async {
        let lobby = start_lobby().await;
        let mut a = Client::connect(lobby.addr, "/").await;
        let mut b = Client::connect(lobby.addr, "/").await;
        let mut c = Client::connect(lobby.addr, "/").await; // never joins
        a.expect_add_peer(b.id).await;
        a.expect_add_peer(c.id).await;
        b.expect_add_peer(a.id).await;
        b.expect_add_peer(c.id).await;
        c.expect_add_peer(a.id).await;
        c.expect_add_peer(b.id).await;
        a.join("ann").await;
        a.expect_rpc(
            WELCOME,
            &[&[2][..], &int_c(a.id.into()), &players(&[(a.id, "ann")])].concat(),
        )
        .await;
        b.join("bob").await;
        b.recv().await; // welcome
        a.recv().await; // announce

        // say(text) from b → chat(b, text) to a and b (joined), not c.
        b.send(&call_cached(1, SAY, Some((1, &string("hello all")))));
        let chat = [&[2][..], &int_c(b.id.into()), &string("hello all")].concat();
        a.expect_rpc(CHAT, &chat).await;
        b.expect_rpc(CHAT, &chat).await;

        // move(pos) from a → moved(a, pos) to b only.
        a.send(&call_cached(1, MOVE, Some((1, &vector2(1.5, -2.25)))));
        let moved = [&[2][..], &int_c(a.id.into()), &vector2(1.5, -2.25)].concat();
        b.expect_rpc(MOVED, &moved).await;

        // A non-joined client's say reaches the joined ones only.
        c.join_offer_only().await;
        c.send(&call_cached(1, SAY, Some((1, &string("psst")))));
        let chat = [&[2][..], &int_c(c.id.into()), &string("psst")].concat();
        a.expect_rpc(CHAT, &chat).await;
        b.expect_rpc(CHAT, &chat).await;
        a.quiet().await;
        b.quiet().await;
        c.quiet().await;
        lobby.stop().await;
    });
}

impl Client {
    async fn join_offer_only(&mut self) {
        self.send(&offer(1));
        assert_eq!(self.recv().await, vec![2, 1, 1, 0, 0, 0]);
    }
}

#[test]
fn echo_returns_the_identical_value() {
    rt().block_on(async {
        let lobby = start_lobby().await;
        let mut a = Client::connect(lobby.addr, "/").await;
        a.join_offer_only().await;
        // Values as the engine encodes them (variant-vectors.json, and the
        // compressed forms of rows 2, 7 and 9 of scene-rpc-vectors.md).
        let values: Vec<Vec<u8>> = vec![
            hex("0201"),                      // 1 (compressed 8-bit)
            hex("c2005ed0b200000000"),        // 3000000000 (compressed 64-bit)
            hex("81"),                        // true
            hex("00000000"),                  // null
            hex("03000100182d4454fb210940"),  // PI (64-bit float)
            hex("040000001800000068c3a96c6c6f2077c3b6726c6420e29c9320e697a5e69cac"),
            hex("1500000006000000706c617965720000"),
            hex("1600000003000080000000000100000004000000726f6f74040000004d61696e06000000506c617965720000"),
            hex("050000000000c03f000010c0"),
            hex("0b00000040a9603f4477f53e4477f5be40a9603f000020410000a041"),
            hex("120000000000803f0000000000000000000000000000803f0000000000000000000000000000803f0000e0400000004100001041"),
            hex("130000000000803f000000000000000000000000000000000000803f000000000000000000000000000000000000803f000000000000000000000000000000000000803f"),
            hex("140000000000803f0000003f0000803e0000803f"),
            hex("170000000000000000000000"),
            hex("1c000000020000001c0000000200000002000000010000001c0000000100000002000000020000001b000000010000000400000001000000610000001c000000010000000200000003000000"),
            hex("1c0001000200000003000000020000000100000002000000020000000200000003000000"),
            hex("1b0000000300000004000000040000006e616d650400000003000000626f6200020000000100000003000000000020400400000003000000706f7300050000000000404000008040"),
            hex("1b00050004000000020000000200000004000000010000006100000002000000010000000400000001000000620000000200000002000000"),
            hex("1e0000000300000001000000ffffffffffffff7f"),
            hex("2200000003000000020000006100000004000000626364000100000000000000"),
            hex("23000000020000000000803f000000400000404000008040"),
            hex("26000000010000000000803f000000400000404000008040"),
        ];
        for v in &values {
            a.send(&call_cached(1, ECHO, Some((1, v))));
            a.expect_rpc(ECHOED, &[&[1][..], v].concat()).await;
        }
        // A PackedByteArray travels byte-only (row 4 form), both ways.
        a.send(&raw_call(1, ECHO, &[1, 2, 3]));
        let p = a.recv().await;
        assert_eq!(read_server_rpc(&p), (ECHOED, true, vec![1, 2, 3]));
        // An empty PackedByteArray is no argument on the wire (row 8 form).
        a.send(&call_cached(1, ECHO, None));
        let p = a.recv().await;
        assert_eq!(read_server_rpc(&p), (ECHOED, true, vec![]));
        // A NodePath whose padding bytes are not zero (the engine does not
        // clear them) is accepted; it comes back with zero padding.
        let dirty = hex("1600000001000080000000000000000001000000 41 ee ee ee");
        a.send(&call_cached(1, ECHO, Some((1, &dirty))));
        let clean = hex("1600000001000080000000000000000001000000 41 00 00 00");
        a.expect_rpc(ECHOED, &[&[1][..], &clean].concat()).await;
        a.quiet().await;
        let stats = lobby.stop().await;
        assert_eq!(stats.dropped_total(), 0, "{stats:?}");
    });
}

#[test]
fn send_bytes_to_peer_1_comes_back_and_broadcasts_are_relayed_not_echoed() {
    rt().block_on(async {
        let lobby = start_lobby().await;
        let mut a = Client::connect(lobby.addr, "/").await;
        let mut b = Client::connect(lobby.addr, "/").await;
        a.expect_add_peer(b.id).await;
        b.expect_add_peer(a.id).await;
        // send_bytes(data, 1): RAW straight to the server (spec §7 "03 68 69").
        a.send(&hex("03 68 69"));
        assert_eq!(a.recv().await, hex("03 68 69"));
        b.quiet().await;
        // send_bytes(data) to everyone: RELAY with target 0 (spec §7).
        a.send(&hex("07 03 00000000 03 09 08 07"));
        assert_eq!(
            b.recv().await,
            [&[7, 3][..], &a.id.to_le_bytes(), &[3, 9, 8, 7]].concat()
        );
        a.quiet().await;
        // To one other peer: relayed to it only.
        a.send(&[&[7, 3][..], &b.id.to_le_bytes(), &[3, 1]].concat());
        assert_eq!(
            b.recv().await,
            [&[7, 3][..], &a.id.to_le_bytes(), &[3, 1]].concat()
        );
        a.quiet().await;
        lobby.stop().await;
    });
}

#[test]
fn clients_reach_each_other_and_leavers_are_removed() {
    rt().block_on(async {
        let lobby = start_lobby().await;
        let mut a = Client::connect(lobby.addr, "/any/path?room=1").await;
        let mut b = Client::connect(lobby.addr, "/other").await;
        a.expect_add_peer(b.id).await;
        b.expect_add_peer(a.id).await;
        a.join("ann").await;
        a.recv().await;
        b.join("bob").await;
        b.recv().await;
        a.recv().await;
        // rpc_id(b, …) from a: the engine wraps it in RELAY (the captured rows
        // are exactly this: 07 03 <source> + row 1a/1b/2 …).
        let inner = hex("a006000080004d61696e00");
        a.send(&[&[7, 3][..], &b.id.to_le_bytes(), &inner].concat());
        assert_eq!(
            b.recv().await,
            [&[7, 3][..], &a.id.to_le_bytes(), &inner].concat()
        );
        // Spawner / synchronizer traffic between clients is relayed as is.
        let despawn = hex("05 05000000");
        b.send(&[&[7, 3][..], &a.id.to_le_bytes(), &despawn].concat());
        assert_eq!(
            a.recv().await,
            [&[7, 3][..], &b.id.to_le_bytes(), &despawn].concat()
        );
        let sync = hex("16 01000000 0300000000000000 04000000 02000000");
        b.send(&[&[7, 3][..], &0i32.to_le_bytes(), &sync].concat());
        assert_eq!(
            a.recv().await,
            [&[7, 3][..], &b.id.to_le_bytes(), &sync].concat()
        );
        // b leaves: a gets DEL_PEER; a newcomer's welcome lists a only.
        let b_id = b.id;
        drop(b);
        assert_eq!(a.recv().await, [&[7, 2][..], &b_id.to_le_bytes()].concat());
        let mut c = Client::connect(lobby.addr, "/").await;
        a.expect_add_peer(c.id).await;
        c.expect_add_peer(a.id).await;
        c.join("cid").await;
        let welcome = [int_c(c.id.into()), players(&[(a.id, "ann"), (c.id, "cid")])].concat();
        c.expect_rpc(WELCOME, &[&[2][..], &welcome].concat()).await;
        a.expect_rpc(
            ANNOUNCE,
            &[&[2][..], &int_c(c.id.into()), &string("cid")].concat(),
        )
        .await;
        lobby.stop().await;
    });
}

#[test]
fn malformed_packets_and_unknown_methods_leave_everyone_unaffected() {
    rt().block_on(async {
        let lobby = start_lobby().await;
        let mut a = Client::connect(lobby.addr, "/").await;
        let mut b = Client::connect(lobby.addr, "/").await;
        a.expect_add_peer(b.id).await;
        b.expect_add_peer(a.id).await;
        a.join("ann").await;
        a.recv().await;
        b.join("bob").await;
        b.recv().await;
        a.recv().await;
        let bad: Vec<(Vec<u8>, DropReason)> = vec![
            (hex("0709"), DropReason::UnknownSys),
            (hex("07"), DropReason::ShortSys),
            (hex("0701 02000000"), DropReason::SysFromClient),
            (hex("0703 05000000"), DropReason::ShortRelay),
            (hex("0703 7b000000 0301"), DropReason::UnknownTarget),
            (call_cached(1, 9, None), DropReason::UnknownMethod),
            (
                call_cached(
                    1,
                    WELCOME,
                    Some((2, &[int_c(1), hex("1b00000000000000")].concat())),
                ),
                DropReason::NotCallable,
            ),
            (
                call_cached(1, SAY, Some((1, &int_c(5)))),
                DropReason::WrongArgType,
            ),
            (call_cached(1, SAY, None), DropReason::WrongArgCount),
            (
                call_cached(
                    1,
                    MOVE,
                    Some((2, &[vector2(1.0, 2.0), vector2(1.0, 2.0)].concat())),
                ),
                DropReason::WrongArgCount,
            ),
            (
                call_cached(1, SAY, Some((1, &hex("04000000 ffffff7f")))),
                DropReason::BadArgs,
            ),
            (
                call_cached(1, SAY, Some((1, &[string("x"), vec![0]].concat()))),
                DropReason::BadArgs,
            ),
            (
                call_cached(1, ECHO, Some((1, &hex("18000000 0100000000000000")))),
                DropReason::BadArgs,
            ),
            (
                call_cached(1, ECHO, Some((1, &hex("1c000000 ffffff7f")))),
                DropReason::BadArgs,
            ),
            (
                call_cached(7, SAY, Some((1, &string("x")))),
                DropReason::UnknownCacheId,
            ),
            (
                call_inline(SAY, Some((1, &string("x"))))
                    .iter()
                    .copied()
                    .take(11)
                    .collect(),
                DropReason::Malformed,
            ),
            (
                [
                    &[0x20u8, 11, 0, 0, 0x80, SAY, 1][..],
                    &string("x")[..4],
                    b"Nope\0",
                ]
                .concat(),
                DropReason::UnknownNode,
            ),
            (hex("30 01 07"), DropReason::Malformed),
            (hex("0201 09000000"), DropReason::UnexpectedConfirm),
            (hex("05 05000000"), DropReason::Replication),
        ];
        for (bytes, _) in &bad {
            a.send(bytes);
        }
        // Everything still works for a and b.
        a.send(&call_cached(1, SAY, Some((1, &string("still here")))));
        let chat = [&[2][..], &int_c(a.id.into()), &string("still here")].concat();
        a.expect_rpc(CHAT, &chat).await;
        b.expect_rpc(CHAT, &chat).await;
        a.quiet().await;
        b.quiet().await;
        let stats = lobby.stop().await;
        for (bytes, reason) in &bad {
            assert!(
                stats.dropped(*reason) >= 1,
                "{bytes:02x?} not counted as {reason:?}: {stats:?}"
            );
        }
        assert_eq!(stats.dropped_total(), bad.len() as u64, "{stats:?}");
    });
}

#[test]
fn clients_that_never_confirm_get_the_inline_path_every_time() {
    rt().block_on(async {
        let lobby = start_lobby().await;
        let mut a = Client::connect(lobby.addr, "/").await;
        a.confirm = false;
        a.join("ann").await;
        for _ in 0..3 {
            let p = a.recv().await;
            assert_eq!(p[0], 0x20, "inline form {p:02x?}");
            a.send(&call_cached(1, JOIN, Some((1, &string("ann")))));
        }
        lobby.stop().await;
    });
}

// --- the example binary (CLI.md) ------------------------------------------

mod binary {
    use std::io::{BufRead, BufReader};
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    /// target/<profile>/examples/lobby, built by `cargo test` with the crate.
    fn lobby_binary() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let path = exe.parent()?.parent()?.join("examples").join("lobby");
        path.exists().then_some(path)
    }

    fn binary_or_skip() -> Option<PathBuf> {
        let found = lobby_binary();
        if found.is_none() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the lobby example is not built (CI must build it: cargo test builds examples)"
            );
            eprintln!("NOTE: examples/lobby not built; skipping (run `cargo test -p wsmp-scene`)");
        }
        found
    }

    #[test]
    fn listening_line_join_and_sigterm_exit_0() {
        let Some(bin) = binary_or_skip() else { return };
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr: std::net::SocketAddr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .parse()
            .unwrap();
        super::rt().block_on(async {
            let mut a = super::Client::connect(addr, "/").await;
            a.join("ann").await;
            let welcome = [super::int_c(a.id.into()), super::players(&[(a.id, "ann")])].concat();
            a.expect_rpc(super::WELCOME, &[&[2][..], &welcome].concat())
                .await;
        });
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
    }

    #[test]
    fn bad_arguments_exit_2_with_one_line() {
        let Some(bin) = binary_or_skip() else { return };
        let out = Command::new(bin)
            .args(["--listen", "nowhere"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim().lines().count(),
            1
        );
    }
}
