//! Found by the `host_ops` fuzzer (issue 10, item 7): a peer whose close
//! frame arrived but whose socket ended before the relay's close reply was
//! written was forgotten by the host without `PeerDisconnected`, so the
//! other members of its room never got DEL_PEER (a ghost peer), and its id,
//! drawn again, could be announced twice. A client that sends a close frame
//! and resets its socket at once (a closing browser tab, a killed game) is
//! the real-world shape of it.

use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn a_client_that_closes_and_resets_is_announced_gone() {
    let _serial = serial();
    let relay = RelayProc::spawn(&[], &[]);
    let mut watcher = open(relay.addr(), None, "/room/ghost")
        .expect("watcher")
        .open();
    watcher.read_id().expect("id");
    watcher
        .s
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let rounds = 40;
    let mut missing = Vec::new();
    for _ in 0..rounds {
        let mut leaver = open(relay.addr(), None, "/room/ghost")
            .expect("leaver")
            .open();
        let id = leaver.read_id().expect("id");
        assert_eq!(watcher.recv().expect("ADD_PEER"), add_peer(id));
        // Close frame, then a reset (SO_LINGER 0) right behind it.
        socket2::SockRef::from(leaver.s.tcp())
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        leaver.send_close(1000).expect("close frame");
        drop(leaver);
        let end = Instant::now() + Duration::from_secs(5);
        let mut gone = false;
        while Instant::now() < end && !gone {
            // `recv` answers pings; a close or the end of the stream is an error.
            match watcher.recv() {
                Ok(m) => gone = m == del_peer(id),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("the relay closed the watcher: {e}"),
            }
        }
        if !gone {
            missing.push(id);
        }
    }
    figure(
        "close_reset",
        format!(
            "{} of {rounds} close-then-reset leavers never announced gone",
            missing.len()
        ),
    );
    assert!(missing.is_empty(), "no DEL_PEER for {missing:?}");
    assert!(
        relay.wait_peers(1, Duration::from_secs(5)),
        "only the watcher stays"
    );
}
