// Interop peer built on the Node `ws` library (8.x). Same contract as py_peer.py:
//   node node_peer.js server [--protocols b]
//   node node_peer.js client --url URL [--protocols a,b] [--header Name:Value]... --steps S1,...
// The server also prints {"event":"ping","data":..} for every ping it receives.
'use strict';
const path = require('path');
const modDir = path.resolve(process.env.WSMP_NODE_MODULES || path.join(__dirname, 'node_modules'));
const WebSocket = require(path.join(modDir, 'ws'));

const TEXT = 'hello interop \u2713';
const BIG = Buffer.alloc(1 << 20);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7 + 3) % 251;
let DEFLATE_TEXT = '';
for (let i = 0; i < 100; i++) DEFLATE_TEXT += `{"id":${i},"name":"player${i}","x":${i * 37 % 1000},"y":${i * 91 % 1000}},`;
const DEFLATE_BINARY = Buffer.alloc(100000);
for (let i = 0; i < DEFLATE_BINARY.length; i++) DEFLATE_BINARY[i] = Math.floor(i / 16) % 7;

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function parseArgs(argv) {
  const a = { mode: argv[0], protocols: '', header: [], steps: '' };
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'header') a.header.push(argv[i + 1]); else a[k] = argv[i + 1];
  }
  return a;
}

function server(args) {
  const protocols = args.protocols ? args.protocols.split(',') : [];
  const opts = { host: '127.0.0.1', port: 0, maxPayload: 64 << 20 };
  // --deflate 1: accept permessage-deflate (ws servers do not by default).
  if (args.deflate) opts.perMessageDeflate = true;
  if (protocols.length) {
    opts.handleProtocols = (offered) => {
      for (const p of offered) if (protocols.includes(p)) return p;
      return false;
    };
  }
  const wss = new WebSocket.Server(opts, () => out({ event: 'listening', port: wss.address().port }));
  wss.on('connection', (ws, req) => {
    const headers = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers[req.rawHeaders[i].toLowerCase()] = req.rawHeaders[i + 1];
    out({ event: 'request', path: req.url, headers, protocol: ws.protocol || null, extensions: ws.extensions || null });
    ws.on('ping', (data) => out({ event: 'ping', data: data.toString() }));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        const s = data.toString();
        if (s.startsWith('close:')) {
          const [, code, ...rest] = s.split(':');
          ws.close(Number(code), rest.join(':'));
          return;
        }
        ws.send(s);
      } else {
        ws.send(data, { binary: true });
      }
    });
    ws.on('close', (code, reason) => out({ event: 'closed', code, reason: reason.toString() }));
  });
}

function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms))]);
}

async function client(args) {
  const headers = {};
  for (const h of args.header) { const i = h.indexOf(':'); headers[h.slice(0, i).trim()] = h.slice(i + 1).trim(); }
  const protocols = args.protocols ? args.protocols.split(',') : [];
  const ws = new WebSocket(args.url, protocols, { headers, maxPayload: 64 << 20, handshakeTimeout: 5000 });
  const inbox = [];
  let waiter = null;
  let closed = null;
  const wake = () => { if (waiter) { const w = waiter; waiter = null; w(); } };
  ws.on('message', (data, isBinary) => { inbox.push({ data, isBinary }); wake(); });
  ws.on('close', (code, reason) => { closed = { code, reason: reason.toString() }; wake(); });
  ws.on('pong', () => { inbox.push({ pong: true }); wake(); });
  const next = async (what) => {
    while (!inbox.length) {
      if (closed) throw new Error('closed while waiting for ' + what);
      await withTimeout(new Promise((r) => { waiter = r; }), 30000, what);
    }
    return inbox.shift();
  };
  const waitClosed = async () => {
    while (!closed) await withTimeout(new Promise((r) => { waiter = r; }), 10000, 'close');
    return closed;
  };
  await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 10000, 'open');
  out({ event: 'open', protocol: ws.protocol || null, extensions: ws.extensions || null });
  for (const step of args.steps.split(',')) {
    if (step === 'text') {
      ws.send(TEXT);
      const m = await next(step);
      out({ step, type: m.isBinary ? 'binary' : 'text', equal: m.data.toString() === TEXT, len: m.data.length });
    } else if (step === 'binary' || step === 'big') {
      const data = step === 'big' ? BIG : Buffer.from([...Array(256).keys()]);
      ws.send(data, { binary: true });
      const m = await next(step);
      out({ step, type: m.isBinary ? 'binary' : 'text', equal: Buffer.compare(m.data, data) === 0, len: m.data.length });
    } else if (step === 'deflate') {
      let ok = true;
      for (let i = 0; i < 3; i++) {
        for (const [data, binary] of [[DEFLATE_TEXT, false], [DEFLATE_BINARY, true]]) {
          ws.send(data, { binary });
          const m = await next(step);
          ok = ok && m.isBinary === binary && (binary ? Buffer.compare(m.data, data) === 0 : m.data.toString() === data);
        }
      }
      out({ step, equal: ok });
    } else if (step === 'ping') {
      ws.ping(Buffer.from('hi'));
      const m = await next(step);
      out({ step, pong: m.pong === true });
    } else if (step.startsWith('close_client:') || step.startsWith('close_server:')) {
      const [kind, code, ...rest] = step.split(':');
      if (kind === 'close_client') ws.close(Number(code), rest.join(':'));
      else ws.send('close:' + code + ':' + rest.join(':'));
      const c = await waitClosed();
      out({ step: 'closed', code: c.code, reason: c.reason });
    } else {
      throw new Error('unknown step ' + step);
    }
  }
  if (!closed) ws.terminate();
}

const args = parseArgs(process.argv.slice(2));
if (args.mode === 'server') server(args);
else client(args).then(() => process.exit(0), (e) => { out({ error: String(e) }); process.exit(1); });
