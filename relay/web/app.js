// wsmp-relay demo page: a browser client speaking the same bytes as a Redot/Godot 4
// WebSocketMultiplayerPeer + SceneMultiplayer client (spec/scene-multiplayer.md, spec/websocket-peer.md §3.7).
"use strict";

(function () {
  const SYS = 0x07, SYS_AUTH = 0, SYS_ADD_PEER = 1, SYS_DEL_PEER = 2, SYS_RELAY = 3;
  const RAW = 0x03;
  const MAX_TEXT_BYTES = 60000; // stays under the 65535-byte default buffers with the 7-byte header
  const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("join-form"), room: $("room"), token: $("token"), jwt: $("jwt"),
    connect: $("connect"), disconnect: $("disconnect"),
    dot: $("status-dot"), status: $("status"), me: $("me"), compression: $("compression"),
    peers: $("peers"), peerCount: $("peer-count"),
    messages: $("messages"), sendForm: $("send-form"), target: $("target"),
    text: $("text"), send: $("send"),
  };

  const encoder = new TextEncoder();
  const decoder = new TextDecoder("utf-8", { fatal: false });

  let ws = null;
  let myId = 0;          // 0 until the 4-byte id message arrived
  let admitted = false;  // true once the relay's peer list can arrive
  const peers = new Set();

  // ---- wire helpers -------------------------------------------------------

  function relayPacket(target, inner) {
    // 07 03 <target i32 LE> <inner>
    const buf = new Uint8Array(6 + inner.length);
    buf[0] = SYS; buf[1] = SYS_RELAY;
    new DataView(buf.buffer).setInt32(2, target, true);
    buf.set(inner, 6);
    return buf;
  }

  function rawPacket(text) {
    const body = encoder.encode(text);
    const buf = new Uint8Array(1 + body.length);
    buf[0] = RAW;
    buf.set(body, 1);
    return buf;
  }

  function authPacket(data) {
    const buf = new Uint8Array(2 + data.length);
    buf[0] = SYS; buf[1] = SYS_AUTH;
    buf.set(data, 2);
    return buf;
  }

  function hex(bytes, max) {
    const parts = [];
    for (let i = 0; i < Math.min(bytes.length, max); i++) parts.push(bytes[i].toString(16).padStart(2, "0"));
    return parts.join(" ") + (bytes.length > max ? " …" : "");
  }

  // ---- UI helpers ---------------------------------------------------------

  function setStatus(text, state) {
    el.status.textContent = text;
    el.dot.className = "dot " + state;
  }

  function addLine(kind, who, text) {
    const li = document.createElement("li");
    li.className = kind;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = new Date().toLocaleTimeString();
    li.appendChild(time);
    if (who) {
      const w = document.createElement("span");
      w.className = "who";
      w.textContent = who;
      li.appendChild(w);
    }
    li.appendChild(document.createTextNode(text));
    const atBottom = el.messages.scrollTop + el.messages.clientHeight >= el.messages.scrollHeight - 4;
    el.messages.appendChild(li);
    while (el.messages.children.length > 500) el.messages.removeChild(el.messages.firstChild);
    if (atBottom) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function renderPeers() {
    const selected = Number(el.target.value);
    el.peers.textContent = "";
    const sorted = Array.from(peers).sort((a, b) => a - b);
    if (sorted.length === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = myId ? "nobody else in this room" : "nobody yet";
      el.peers.appendChild(li);
    }
    for (const id of sorted) {
      const li = document.createElement("li");
      li.textContent = "peer " + id;
      li.dataset.id = String(id);
      if (id === selected) li.classList.add("selected");
      li.addEventListener("click", () => {
        el.target.value = Number(el.target.value) === id ? "0" : String(id);
        renderPeers();
        el.text.focus();
      });
      el.peers.appendChild(li);
    }
    el.peerCount.textContent = String(sorted.length);

    el.target.textContent = "";
    const all = document.createElement("option");
    all.value = "0"; all.textContent = "Everyone";
    el.target.appendChild(all);
    for (const id of sorted) {
      const o = document.createElement("option");
      o.value = String(id); o.textContent = "peer " + id;
      el.target.appendChild(o);
    }
    el.target.value = peers.has(selected) ? String(selected) : "0";
  }

  function setConnectedUi(connected) {
    el.connect.disabled = connected;
    el.disconnect.disabled = !connected;
    el.room.disabled = connected;
    el.token.disabled = connected;
    el.jwt.disabled = connected;
    const canSend = connected && admitted;
    el.text.disabled = !canSend;
    el.send.disabled = !canSend;
  }

  // ---- protocol -----------------------------------------------------------

  function onPacket(bytes) {
    if (!myId) {
      // spec/websocket-peer.md §3.7: the first message is our id, 4 bytes LE, >= 2.
      if (bytes.length !== 4) return fail("invalid id message (" + bytes.length + " bytes)");
      const id = new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true);
      if (id < 2) return fail("invalid id " + id);
      myId = id;
      el.me.textContent = "you are peer " + myId;
      const token = el.token.value;
      if (token) {
        // spec/scene-multiplayer.md §3.4: send our data, then our completion.
        ws.send(authPacket(encoder.encode(token)));
        ws.send(authPacket(new Uint8Array(0)));
        setStatus("Authenticating…", "wait");
      } else {
        admitted = true;
        setStatus("Connected", "on");
      }
      addLine("sys", "", "connected as peer " + myId);
      setConnectedUi(true);
      renderPeers();
      return;
    }
    if (bytes.length === 0) return;
    const cmd = bytes[0] & 0x07;
    if (cmd !== SYS) {
      addLine("sys", "relay", "sent command " + cmd + " directly (" + bytes.length + " bytes), ignored");
      return;
    }
    const sub = bytes[1];
    if (sub === SYS_AUTH) {
      if (bytes.length === 2 && !admitted) {
        admitted = true;
        setStatus("Connected (authenticated)", "on");
        addLine("sys", "", "authenticated");
        setConnectedUi(true);
      }
      return;
    }
    if (bytes.length < 6) return;
    const id = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getInt32(2, true);
    if (sub === SYS_ADD_PEER) {
      peers.add(id);
      addLine("sys", "", "peer " + id + " joined");
      renderPeers();
    } else if (sub === SYS_DEL_PEER) {
      if (peers.delete(id)) {
        addLine("sys", "", "peer " + id + " left");
        renderPeers();
      }
    } else if (sub === SYS_RELAY && bytes.length >= 7) {
      const inner = bytes.subarray(6);
      const innerCmd = inner[0] & 0x07;
      const who = id === myId ? "you (echo)" : "peer " + id;
      if (innerCmd === RAW) {
        addLine("", who, decoder.decode(inner.subarray(1)));
      } else {
        const names = ["RPC", "SIMPLIFY_PATH", "CONFIRM_PATH", "RAW", "SPAWN", "DESPAWN", "SYNC", "SYS"];
        addLine("sys", who, names[innerCmd] + " packet, " + inner.length + " bytes: " + hex(inner, 24));
      }
    }
  }

  function fail(why) {
    addLine("err", "", why);
    if (ws) ws.close(1000);
  }

  function connect(ev) {
    ev.preventDefault();
    if (ws) return;
    const room = el.room.value.trim();
    if (room && !ROOM_RE.test(room)) {
      addLine("err", "", "room names are 1–64 letters, digits, _ or -");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const base = scheme + "://" + location.host + (room ? "/room/" + room : "/");
    // A signed player token goes in the URL (browsers cannot set an
    // Authorization header on a WebSocket); the relay checks it before the upgrade.
    const jwt = el.jwt.value.trim();
    const url = jwt ? base + "?token=" + encodeURIComponent(jwt) : base;
    myId = 0; admitted = false; peers.clear();
    el.me.textContent = "";
    setStatus("Connecting to " + base + (jwt ? "?token=…" : "") + "…", "wait");
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      setStatus("Not connected", "off");
      addLine("err", "", "cannot connect: " + e.message);
      return;
    }
    ws = sock;
    ws.binaryType = "arraybuffer";
    setConnectedUi(true);
    // What the relay agreed to (RFC 7692 permessage-deflate, or nothing).
    ws.onopen = () => {
      const ext = sock.extensions || "";
      el.compression.textContent = ext.startsWith("permessage-deflate") ? "compressed" : "uncompressed";
      el.compression.dataset.extensions = ext;
      el.compression.title = ext || "no extension";
    };
    ws.onmessage = (m) => {
      if (typeof m.data === "string") return onPacket(encoder.encode(m.data));
      onPacket(new Uint8Array(m.data));
    };
    ws.onerror = () => addLine("err", "", "connection error");
    ws.onclose = (c) => {
      if (!myId) {
        // No id message: the upgrade itself was refused (the browser hides the HTTP status).
        addLine("err", "", "the relay refused the connection" +
          (jwt ? " (a bad, expired or wrong-room player token gets HTTP 401)" : ""));
      }
      ws = null; myId = 0; admitted = false; peers.clear();
      setStatus("Not connected", "off");
      el.me.textContent = "";
      el.compression.textContent = "";
      delete el.compression.dataset.extensions;
      addLine("sys", "", "disconnected (code " + c.code + (c.reason ? ", " + c.reason : "") + ")");
      setConnectedUi(false);
      renderPeers();
    };
  }

  function send(ev) {
    ev.preventDefault();
    if (!ws || !admitted) return;
    const text = el.text.value;
    if (!text) return;
    const raw = rawPacket(text);
    if (raw.length > MAX_TEXT_BYTES) {
      addLine("err", "", "message too long");
      return;
    }
    const target = Number(el.target.value) | 0;
    ws.send(relayPacket(target, raw));
    addLine("mine", target ? "you → peer " + target : "you → everyone", text);
    el.text.value = "";
    el.text.focus();
  }

  // Opening /room/NAME in the browser pre-fills the room.
  const m = location.pathname.match(/^\/room\/([A-Za-z0-9_-]{1,64})$/);
  if (m) el.room.value = m[1];

  el.form.addEventListener("submit", connect);
  el.disconnect.addEventListener("click", () => { if (ws) ws.close(1000); });
  el.sendForm.addEventListener("submit", send);
  el.target.addEventListener("change", renderPeers);
  setConnectedUi(false);
  renderPeers();
})();
