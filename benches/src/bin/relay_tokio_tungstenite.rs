//! Rival relay: the minimal SceneMultiplayer relay a user would write on tokio-tungstenite,
//! to compare `wsmp-relay` with. Straightforward design: one task per connection reading
//! messages, one writer task per connection fed by a bounded mpsc channel, every room in one
//! `Mutex<HashMap>`; a broadcast is copied once (the source id rewritten) and shared by every
//! receiver as `Bytes`. The writer feeds all queued messages and flushes when its queue is
//! empty (what `StreamExt::forward` does in tokio-tungstenite's chat example).
//!
//! Behaviour (spec/websocket-peer.md §3.7, spec/scene-multiplayer.md §3.2, §3.3, §4.2):
//! rooms by path (`/`, `/room/NAME` with NAME 1–64 of `[A-Za-z0-9_-]`, query ignored; other
//! paths 404); on join the 4-byte id message, then ADD_PEER both ways with every room mate; on
//! leave DEL_PEER to the rest; RELAY `07 03 <target> <inner>` forwarded as
//! `07 03 <source> <inner>`; every other packet dropped (no game logic for peer 1). A receiver
//! whose queue (4096 messages, as Godot's `max_queued_packets`) is full is disconnected with
//! close 1008, never dropped from silently. No other limits, no heartbeat.
//!
//! Command line: the server contract of shared/design/CLI.md (`--listen HOST:PORT`,
//! `listening on HOST:PORT`, exit 0 on SIGINT/SIGTERM, 2 on bad arguments), plus the test-only
//! `--fault KIND[:N]` (KIND drop, duplicate, corrupt, misroute or reorder, applied to the N-th
//! relayed packet, default 100) with which the tests prove that `relay_load` catches each fault.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use wsmp_benches::{announce, parse_listen};

/// Messages queued per receiver (Godot's `max_queued_packets` default, spec/websocket-peer.md
/// §3.1); a full queue disconnects the receiver.
const QUEUE: usize = 4096;
/// Largest message (Godot's default `inbound_buffer_size`, spec/websocket-peer.md §3.1).
const MAX_MESSAGE: usize = 65535;

/// A deliberate fault, for the load generator's negative tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Drop,
    Duplicate,
    Corrupt,
    Misroute,
    Reorder,
}

struct Member {
    id: i32,
    tx: mpsc::Sender<Message>,
    kicked: Arc<(AtomicBool, Notify)>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<String, Vec<Member>>,
    /// `--fault`: armed at the N-th relayed packet, applied to the first one it can affect.
    fault_armed: bool,
    /// `--fault reorder`: a message held back for one receiver (receiver, sender, message),
    /// sent after the sender's next one to that receiver.
    held: Option<(i32, i32, Message)>,
}

struct Relay {
    state: Mutex<State>,
    next_id: AtomicI32,
    fault: Option<(Fault, u64)>,
    relayed: AtomicU64,
}

/// SYS packets (spec/scene-multiplayer.md §2).
fn sys(sub: u8, id: i32) -> Message {
    let mut b = vec![7, sub];
    b.extend_from_slice(&id.to_le_bytes());
    Message::Binary(b.into())
}

/// The room a request path names (`/` → ""), or `None` (→ 404).
fn room_of(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/" {
        return Some(String::new());
    }
    let name = path.strip_prefix("/room/")?;
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| name.to_owned())
}

/// Whether room member `r` gets a RELAY from `s` to `t` (spec/scene-multiplayer.md §4.2).
/// Written here again on purpose, independent of the load generator's check.
fn is_receiver(t: i32, s: i32, r: i32) -> bool {
    if t > 0 {
        r == t
    } else if t == 0 {
        r != s
    } else {
        r != s && i64::from(r) != -i64::from(t)
    }
}

impl Relay {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `m` for `member`; a full queue kicks it (returns false).
    fn push(member: &Member, m: Message) -> bool {
        match member.tx.try_send(m) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                eprintln!("peer {}: queue full, disconnecting", member.id);
                member.kicked.0.store(true, Ordering::Release);
                member.kicked.1.notify_one();
                false
            }
            // Leaving: its task removes it.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    /// Removes `id` from `room` and tells the rest (spec/scene-multiplayer.md §3.3).
    fn leave(st: &mut State, room: &str, id: i32) {
        let Some(members) = st.rooms.get_mut(room) else {
            return;
        };
        let before = members.len();
        members.retain(|m| m.id != id);
        if members.len() != before {
            let mut kicked = Vec::new();
            for m in members.iter() {
                if !Self::push(m, sys(2, id)) {
                    kicked.push(m.id);
                }
            }
            for k in kicked {
                Self::leave(st, room, k);
            }
        }
        if st.rooms.get(room).is_some_and(|m| m.is_empty()) {
            st.rooms.remove(room);
        }
    }

    /// Adds a member with the ADD_PEER exchange (spec/scene-multiplayer.md §3.2 step 3).
    fn join(&self, room: &str, me: Member) {
        let mut st = self.lock();
        let members = st.rooms.entry(room.to_owned()).or_default();
        let mut kicked = Vec::new();
        for m in members.iter() {
            if !Self::push(m, sys(1, me.id)) {
                kicked.push(m.id);
            }
            Self::push(&me, sys(1, m.id));
        }
        members.push(me);
        for k in kicked {
            Self::leave(&mut st, room, k);
        }
    }

    /// Forwards a packet from `from` (spec/scene-multiplayer.md §4.2).
    fn packet(&self, room: &str, from: i32, data: Bytes) {
        // spec/scene-multiplayer.md §2: RELAY is `07 03 <target i32> <inner ≥ 1 byte>`, and a
        // SYS packet nested in it is invalid. Anything else is for peer 1: dropped.
        if data.len() < 7 || data[0] != 7 || data[1] != 3 || data[6] & 7 == 7 {
            return;
        }
        let target = i32::from_le_bytes([data[2], data[3], data[4], data[5]]);
        let mut out = data.to_vec();
        out[2..6].copy_from_slice(&from.to_le_bytes());
        let out = Bytes::from(out);
        let n = self.relayed.fetch_add(1, Ordering::Relaxed) + 1;
        let mut st = self.lock();
        let State {
            rooms,
            fault_armed,
            held,
        } = &mut *st;
        *fault_armed |= self.fault.is_some_and(|(_, at)| n == at);
        let fault = self.fault.filter(|_| *fault_armed).map(|(f, _)| f);
        let Some(members) = rooms.get(room) else {
            return;
        };
        let mut kicked = Vec::new();
        let mut faulted = false;
        for m in members {
            if !is_receiver(target, from, m.id) {
                if fault == Some(Fault::Misroute) && !faulted {
                    faulted = true;
                    *fault_armed = false;
                    Self::push(m, Message::Binary(out.clone()));
                }
                continue;
            }
            let mut msgs = vec![Message::Binary(out.clone())];
            match fault {
                Some(_) if faulted => {}
                Some(Fault::Drop) => msgs.clear(),
                Some(Fault::Duplicate) => msgs.push(Message::Binary(out.clone())),
                Some(Fault::Corrupt) => {
                    let mut c = out.to_vec();
                    if let Some(b) = c.last_mut() {
                        *b ^= 1;
                    }
                    msgs = vec![Message::Binary(c.into())];
                }
                Some(Fault::Reorder) => *held = msgs.pop().map(|h| (m.id, from, h)),
                Some(Fault::Misroute) | None => {}
            }
            if fault.is_some() && fault != Some(Fault::Misroute) && !faulted {
                faulted = true;
                *fault_armed = false;
            }
            if fault.is_none()
                && held
                    .as_ref()
                    .is_some_and(|(r, s, _)| *r == m.id && *s == from)
            {
                // The held message goes out after a later one.
                if let Some((_, _, h)) = held.take() {
                    msgs.push(h);
                }
            }
            for msg in msgs {
                if !Self::push(m, msg) {
                    kicked.push(m.id);
                    break;
                }
            }
        }
        for k in kicked {
            Self::leave(&mut st, room, k);
        }
    }
}

async fn handle(stream: TcpStream, relay: Arc<Relay>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut room = None;
    // The callback's signature is tungstenite's `Callback` trait.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match room_of(req.uri().path()) {
            Some(r) => {
                room = Some(r);
                Ok(resp)
            }
            None => {
                let mut e = ErrorResponse::new(Some("not a room".into()));
                *e.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                Err(e)
            }
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
        .await
    {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("handshake failed: {e}");
            return;
        }
    };
    let Some(room) = room else { return };
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut write, mut read) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let kicked = Arc::new((AtomicBool::new(false), Notify::new()));
    // spec/websocket-peer.md §3.7: the id message comes first.
    let _ = tx.try_send(Message::Binary(id.to_le_bytes().to_vec().into()));
    let writer_kicked = kicked.clone();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if write.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if write.feed(m).await.is_err() {
                    return;
                }
            }
            if write.flush().await.is_err() {
                return;
            }
        }
        if writer_kicked.0.load(Ordering::Acquire) {
            let _ = write
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Policy,
                    reason: "receiver too slow".into(),
                })))
                .await;
        }
    });
    relay.join(
        &room,
        Member {
            id,
            tx: tx.clone(),
            kicked: kicked.clone(),
        },
    );
    loop {
        tokio::select! {
            msg = read.next() => match msg {
                Some(Ok(Message::Binary(b))) => relay.packet(&room, id, b),
                // Pings are answered and the close handshake completed by tungstenite.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            () = kicked.1.notified() => break,
        }
    }
    Relay::leave(&mut relay.lock(), &room, id);
    drop(tx);
    let _ = writer.await;
}

fn main() {
    let mut fault = None;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--fault" {
            let v = args.next().unwrap_or_default();
            let (kind, at) = v.split_once(':').unwrap_or((&v, "100"));
            let kind = match kind {
                "drop" => Fault::Drop,
                "duplicate" => Fault::Duplicate,
                "corrupt" => Fault::Corrupt,
                "misroute" => Fault::Misroute,
                "reorder" => Fault::Reorder,
                _ => {
                    eprintln!("relay_tokio_tungstenite: bad --fault {v:?}");
                    std::process::exit(2);
                }
            };
            let Ok(at) = at.parse::<u64>() else {
                eprintln!("relay_tokio_tungstenite: bad --fault {v:?}");
                std::process::exit(2);
            };
            fault = Some((kind, at));
        } else {
            rest.push(a);
        }
    }
    let addrs = match parse_listen(rest) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("usage: relay_tokio_tungstenite [--listen HOST:PORT]... [--fault KIND[:N]]");
            return;
        }
        Err(e) => {
            eprintln!("relay_tokio_tungstenite: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(serve(addrs, fault));
}

async fn serve(addrs: Vec<std::net::SocketAddr>, fault: Option<(Fault, u64)>) {
    let relay = Arc::new(Relay {
        state: Mutex::new(State::default()),
        // spec/websocket-peer.md §3.2: client ids are 2 and up.
        next_id: AtomicI32::new(2),
        fault,
        relayed: AtomicU64::new(0),
    });
    let mut listeners = Vec::new();
    for addr in &addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    // Handlers first: a signal right after the `listening on` line must already be caught.
    let shutdown = shutdown_signal();
    for l in &listeners {
        if let Ok(a) = l.local_addr() {
            announce(a);
        }
    }
    for listener in listeners {
        let relay = relay.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(handle(stream, relay.clone()));
                    }
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    shutdown.await;
    eprintln!("relay_tokio_tungstenite: signal received, exiting");
}

/// Installs the SIGINT and SIGTERM handlers now; the returned future completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind| match signal(kind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handler: {e}");
            std::process::exit(1);
        }
    };
    let mut int = install(SignalKind::interrupt());
    let mut term = install(SignalKind::terminate());
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}
