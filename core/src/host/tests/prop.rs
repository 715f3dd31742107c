//! Random join/leave/send/disconnect/read/time sequences: every packet sent
//! to a connected peer is received exactly once and in order, or reported as
//! not delivered, or lost only to a disconnect that allows it.

extern crate std;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use bytes::Bytes;
use proptest::prelude::*;

use super::harness::*;
use crate::config::Config;
use crate::host::*;

#[derive(Debug, Clone)]
enum Op {
    Join,
    ServerSend { kind: u8, idx: usize, len: usize },
    ClientSend { idx: usize, len: usize },
    ServerDisconnect { idx: usize, force: bool },
    ClientDisconnect { idx: usize, force: bool },
    ClientClose { idx: usize },
    ServerRead { n: usize },
    ClientRead { idx: usize, n: usize },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Join),
        6 => (0u8..3, any::<usize>(), 0usize..300)
            .prop_map(|(kind, idx, len)| Op::ServerSend { kind, idx, len }),
        6 => (any::<usize>(), 0usize..300).prop_map(|(idx, len)| Op::ClientSend { idx, len }),
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(idx, force)| Op::ServerDisconnect { idx, force }),
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(idx, force)| Op::ClientDisconnect { idx, force }),
        1 => any::<usize>().prop_map(|idx| Op::ClientClose { idx }),
        3 => (0usize..20).prop_map(|n| Op::ServerRead { n }),
        3 => (any::<usize>(), 0usize..20).prop_map(|(idx, n)| Op::ClientRead { idx, n }),
        // Total time stays below handshake and close timeouts: no loss to them.
        1 => (0u64..50).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Default, Debug)]
struct Model {
    acc_s2c: Vec<u64>,
    acc_c2s: Vec<u64>,
    rx_s2c: Vec<u64>,
    rx_c2s: Vec<u64>,
    /// How many accepted packets must arrive (None: all of them).
    must_s2c: Option<usize>,
    must_c2s: Option<usize>,
}

impl Model {
    fn freeze_s2c(&mut self) {
        let n = self.rx_s2c.len();
        self.must_s2c = Some(self.must_s2c.map_or(n, |m| m.min(n)));
    }
    fn freeze_c2s(&mut self) {
        let n = self.rx_c2s.len();
        self.must_c2s = Some(self.must_c2s.map_or(n, |m| m.min(n)));
    }
}

fn payload(seq: u64, len: usize) -> Bytes {
    let mut v = seq.to_le_bytes().to_vec();
    v.resize(8 + len, (seq % 251) as u8);
    Bytes::from(v)
}

fn seq_of(data: &Bytes) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[..8]);
    let seq = u64::from_le_bytes(b);
    assert!(
        data[8..].iter().all(|&x| x == (seq % 251) as u8),
        "payload intact"
    );
    seq
}

fn pick(net: &Net, idx: usize) -> Option<PeerId> {
    let ids: Vec<PeerId> = net.links.keys().copied().collect();
    (!ids.is_empty()).then(|| ids[idx % ids.len()])
}

struct World {
    net: Net,
    model: BTreeMap<PeerId, Model>,
    seq: u64,
    /// Server signals: (connected, disconnected) per peer.
    signals: BTreeMap<PeerId, (u32, u32)>,
}

impl World {
    fn read_server(&mut self, n: usize) {
        for _ in 0..n {
            let Some((from, data)) = self.net.server.get_packet() else {
                break;
            };
            self.model
                .get_mut(&from)
                .expect("known sender")
                .rx_c2s
                .push(seq_of(&data));
        }
    }

    fn read_client(&mut self, id: PeerId, n: usize) {
        for _ in 0..n {
            let Some((from, data)) = self.net.client(id).get_packet() else {
                break;
            };
            assert_eq!(from, PeerId::SERVER);
            self.model
                .get_mut(&id)
                .expect("link")
                .rx_s2c
                .push(seq_of(&data));
        }
    }

    fn drain_signals(&mut self) {
        while let Some(e) = self.net.server.poll_signal() {
            match e {
                HostEvent::PeerConnected(p) => {
                    let s = self.signals.entry(p).or_default();
                    assert_eq!(*s, (0, 0), "connected once");
                    s.0 += 1;
                }
                HostEvent::PeerDisconnected { peer, .. } => {
                    let s = self.signals.entry(peer).or_default();
                    assert_eq!(*s, (1, 0), "disconnected once, after connecting");
                    s.1 += 1;
                }
                other => panic!("unexpected server event {other:?}"),
            }
        }
        let ids: Vec<PeerId> = self.net.links.keys().copied().collect();
        for id in ids {
            while let Some(e) = self.net.client(id).poll_signal() {
                assert!(
                    matches!(
                        e,
                        HostEvent::PeerConnected(PeerId::SERVER)
                            | HostEvent::PeerDisconnected {
                                peer: PeerId::SERVER,
                                ..
                            }
                    ),
                    "unexpected client event {e:?}"
                );
            }
        }
    }

    fn apply(&mut self, op: Op) {
        let now = self.net.now;
        match op {
            Op::Join => {
                let id = self.net.connect();
                assert!(self.model.insert(id, Model::default()).is_none());
            }
            Op::ServerSend { kind, idx, len } => {
                let Some(id) = pick(&self.net, idx) else {
                    return;
                };
                let target = match kind {
                    0 => Target::Peer(id),
                    1 => Target::Broadcast,
                    _ => Target::AllExcept(id),
                };
                self.seq += 1;
                let connected: Vec<PeerId> = self.net.server.connected_peers().collect();
                match self.net.server.send(now, target, payload(self.seq, len)) {
                    Ok(report) => {
                        let failed: Vec<PeerId> = report.failed.iter().map(|f| f.0).collect();
                        let mut got = 0;
                        for p in connected {
                            let wanted = match target {
                                Target::Peer(t) => p == t,
                                Target::Broadcast => true,
                                Target::AllExcept(t) => p != t,
                            };
                            if wanted && !failed.contains(&p) {
                                self.model.get_mut(&p).expect("link").acc_s2c.push(self.seq);
                                got += 1;
                            }
                        }
                        assert_eq!(got, report.delivered);
                    }
                    Err(e) => {
                        assert_eq!(e.into_payload(), payload(self.seq, len), "payload back")
                    }
                }
            }
            Op::ClientSend { idx, len } => {
                let Some(id) = pick(&self.net, idx) else {
                    return;
                };
                self.seq += 1;
                let r = self
                    .net
                    .client(id)
                    .send(now, Target::Broadcast, payload(self.seq, len));
                match r {
                    Ok(report) => {
                        assert_eq!(report.delivered, 1);
                        self.model
                            .get_mut(&id)
                            .expect("link")
                            .acc_c2s
                            .push(self.seq);
                    }
                    Err(e) => assert_eq!(e.into_payload(), payload(self.seq, len)),
                }
            }
            Op::ServerDisconnect { idx, force } => {
                let Some(id) = pick(&self.net, idx) else {
                    return;
                };
                if self.net.server.disconnect_peer(now, id, force).is_ok() {
                    let m = self.model.get_mut(&id).expect("link");
                    // Packets from the client still in flight are dropped.
                    m.freeze_c2s();
                    if force {
                        m.freeze_s2c();
                    }
                }
            }
            Op::ClientDisconnect { idx, force } => {
                let Some(id) = pick(&self.net, idx) else {
                    return;
                };
                if self
                    .net
                    .client(id)
                    .disconnect_peer(now, PeerId::SERVER, force)
                    .is_ok()
                    && force
                {
                    let m = self.model.get_mut(&id).expect("link");
                    m.freeze_s2c();
                    m.freeze_c2s();
                }
            }
            Op::ClientClose { idx } => {
                let Some(id) = pick(&self.net, idx) else {
                    return;
                };
                self.net.client(id).close();
                let m = self.model.get_mut(&id).expect("link");
                m.freeze_s2c();
                m.freeze_c2s();
            }
            Op::ServerRead { n } => self.read_server(n),
            Op::ClientRead { idx, n } => {
                if let Some(id) = pick(&self.net, idx) {
                    self.read_client(id, n);
                }
            }
            Op::Advance { ms: d } => self.net.advance(ms(d)),
        }
        self.net.pump();
        self.drain_signals();
    }

    fn finish(&mut self) {
        for _ in 0..1000 {
            self.net.pump();
            self.read_server(usize::MAX);
            let ids: Vec<PeerId> = self.net.links.keys().copied().collect();
            for id in &ids {
                self.read_client(*id, usize::MAX);
            }
            self.net.pump();
            let more = self.net.server.available_packet_count() > 0
                || self
                    .net
                    .links
                    .values()
                    .any(|l| l.client.available_packet_count() > 0);
            if !more {
                break;
            }
        }
        self.drain_signals();
        for (id, m) in &self.model {
            for (dir, acc, rx, must) in [
                ("s2c", &m.acc_s2c, &m.rx_s2c, m.must_s2c),
                ("c2s", &m.acc_c2s, &m.rx_c2s, m.must_c2s),
            ] {
                assert!(
                    rx.len() <= acc.len() && rx[..] == acc[..rx.len()],
                    "{id} {dir}: received {rx:?} is not an in-order prefix of sent {acc:?}"
                );
                let need = must.unwrap_or(acc.len());
                assert!(
                    rx.len() >= need,
                    "{id} {dir}: lost silently: sent {acc:?}, received {rx:?}, must {need}"
                );
            }
        }
    }
}

fn run(ops: Vec<Op>) {
    let config = Config {
        inbound_buffer_size: 2000,
        outbound_buffer_size: 3000,
        max_queued_packets: 8,
        ..Config::default()
    };
    let mut w = World {
        net: Net::new(config),
        model: BTreeMap::new(),
        seq: 0,
        signals: BTreeMap::new(),
    };
    for op in ops {
        w.apply(op);
    }
    w.finish();
    if std::env::var("WSMP_PROP_DEBUG").is_ok() {
        let rx: usize = w
            .model
            .values()
            .map(|m| m.rx_s2c.len() + m.rx_c2s.len())
            .sum();
        let acc: usize = w
            .model
            .values()
            .map(|m| m.acc_s2c.len() + m.acc_c2s.len())
            .sum();
        std::eprintln!("received {rx} of {acc}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn prop_nothing_lost_silently(ops in proptest::collection::vec(op(), 1..50)) {
        run(ops);
    }
}

#[test]
fn prop_regression_busy_peer() {
    use Op::*;
    run(alloc::vec![
        Join,
        Join,
        ClientSend { idx: 0, len: 10 },
        ServerSend {
            kind: 1,
            idx: 0,
            len: 299
        },
        ServerSend {
            kind: 2,
            idx: 1,
            len: 5
        },
        ClientDisconnect {
            idx: 0,
            force: false
        },
        ServerSend {
            kind: 0,
            idx: 0,
            len: 1
        },
        ServerDisconnect {
            idx: 1,
            force: false
        },
        ClientSend { idx: 1, len: 7 },
        Advance { ms: 10 },
        ServerRead { n: 1 },
    ]);
}
