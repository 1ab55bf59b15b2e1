// Test doubles: a fake Baileys socket (EventEmitter `ev`, recorded sendMessage) and a WebSocket test client.
import { EventEmitter, once } from 'node:events';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createBridge } from '../../src/bridge.js';

export const ME = '15550001111:7@s.whatsapp.net';
export const ME_LID = '99887766554433:7@lid';
export const TOKEN = 'test-token-0123456789';
export const NOW_MS = Date.UTC(2025, 0, 1, 12, 0, 0);
export const NOW_S = NOW_MS / 1000;

/** Stands in for Baileys' WASocket at the bridge's boundary. */
export class FakeSocket {
  constructor() {
    this.ev = new EventEmitter();
    this.user = { id: ME, lid: ME_LID };
    this.sent = []; // [{ jid, content }]
    this.ended = false;
    this.failures = []; // errors thrown by the next sendMessage calls, in order
    this.counter = 0;
  }

  async sendMessage(jid, content) {
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.sent.push({ jid, content });
    this.counter += 1;
    return { key: { id: `SENT${this.counter}`, remoteJid: jid, fromMe: true } };
  }

  end() {
    this.ended = true;
  }

  open() {
    this.ev.emit('connection.update', { connection: 'open' });
  }

  close(statusCode, message = 'Connection Closed') {
    const error = Object.assign(new Error(message), { output: { statusCode } });
    this.ev.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
  }

  receive(messages, type = 'notify') {
    this.ev.emit('messages.upsert', { messages, type });
  }
}

/** A WAMessage as Baileys hands it over in messages.upsert. */
export function waMessage({ id = 'MSG1', chat = '15552223333@s.whatsapp.net', participant, fromMe = false,
  text = 'hello', timestamp = NOW_S + 5, contextInfo, message } = {}) {
  return {
    key: { id, remoteJid: chat, fromMe, ...(participant ? { participant } : {}) },
    messageTimestamp: timestamp,
    pushName: 'Ann',
    message: message ?? (contextInfo ? { extendedTextMessage: { text, contextInfo } } : { conversation: text }),
  };
}

/** Memory-only auth state: records saveCreds calls. */
export function memoryAuth() {
  const calls = { loads: 0, saves: 0 };
  const loadAuthState = async () => {
    calls.loads += 1;
    return { state: { creds: {}, keys: {} }, saveCreds: async () => { calls.saves += 1; } };
  };
  return { loadAuthState, calls };
}

/** A started bridge over fake sockets; `sockets` lists every socket makeSocket produced. */
export async function startBridge(overrides = {}) {
  const sockets = [];
  const auth = memoryAuth();
  const authDir = overrides.authDir ?? (await mkdtemp(join(tmpdir(), 'wa-bridge-')));
  const bridge = createBridge({
    makeSocket: () => {
      const sock = new FakeSocket();
      sockets.push(sock);
      return sock;
    },
    loadAuthState: auth.loadAuthState,
    authDir,
    token: TOKEN,
    now: () => NOW_MS,
    backoff: { baseMs: 5, maxMs: 40 },
    authTimeoutMs: 2000,
    ...overrides,
  });
  await bridge.start();
  return { bridge, sockets, auth, authDir, url: `ws://127.0.0.1:${bridge.port}` };
}

/** WebSocket client that keeps every frame and lets a test wait for the one it wants. */
export class Client {
  static async connect(url, { token = TOKEN, origin } = {}) {
    const client = new Client(new WebSocket(url, origin ? { origin } : {}));
    await once(client.ws, 'open');
    if (token !== null) client.send({ type: 'auth', token });
    return client;
  }

  /** Connect, authenticate and wait for the status snapshot that confirms the auth. */
  static async authed(url) {
    const client = await Client.connect(url);
    await client.next((f) => f.type === 'status');
    return client;
  }

  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()));
      this.waiters = this.waiters.filter((w) => !w());
    });
  }

  send(frame) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolve with the first frame (seen or future) matching `predicate`. */
  next(predicate, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame; got ${JSON.stringify(this.frames)}`)), timeoutMs);
      const check = () => {
        const found = this.frames.find(predicate);
        if (!found) return false;
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      if (!check()) this.waiters.push(check);
    });
  }

  close() {
    this.ws.close();
    return this.closed;
  }
}

/** Poll until `condition()` (sync or async) is truthy (deterministic tests without fixed sleeps). */
export async function until(condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
