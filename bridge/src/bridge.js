// The bridge: one Baileys socket on one side, one authenticated Python client on the other.
// Baileys' socket is injected (`makeSocket`) so tests drive the bridge with a fake socket.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DisconnectReason } from '@whiskeysockets/baileys';
import { toInbound, toSeconds } from './messages.js';
import { createServerSide, LOOPBACK, sendTo } from './server.js';
import { MAX_CHUNK, splitText } from './split.js';

const QUEUE_LIMIT = 1000; // frames kept for a Python client that is (re)connecting
const MEMORY_LIMIT = 5000; // message ids / request ids remembered for de-duplication
const SILENT = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * @param {object} opts
 * @param {(cfg: {auth: object, logger: object}) => object|Promise<object>} opts.makeSocket builds a Baileys socket
 * @param {(dir: string) => Promise<{state: object, saveCreds: Function}>} opts.loadAuthState e.g. useMultiFileAuthState
 * @param {string} opts.authDir where the linked device's credentials live
 * @param {string} [opts.token] shared secret for the WebSocket; without it no WebSocket is served (login mode)
 * @param {number} [opts.port] 0 picks a free port
 * @param {() => number} [opts.now] clock in ms, for "skip messages older than the bridge"
 * @param {{baseMs: number, maxMs: number}} [opts.backoff] reconnect delays: baseMs * 2^attempt, capped
 * @param {(qr: string) => void} [opts.onQr] also called for every QR (the CLI prints it)
 * @param {(status: object) => void} [opts.onStatus] called on every status change
 */
export function createBridge({
  makeSocket,
  loadAuthState,
  authDir,
  token,
  host = LOOPBACK,
  port = 0,
  now = Date.now,
  backoff = { baseMs: 1000, maxMs: 60_000 },
  maxChunk = MAX_CHUNK,
  authTimeoutMs,
  onQr,
  onStatus,
  logger = SILENT,
}) {
  const queue = []; // frames waiting for a client
  const seenMessages = new Set();
  const acked = new Map(); // requestId -> successful ack, so a retried send is not delivered twice
  const inflight = new Map(); // requestId -> promise of its ack
  const chatChains = new Map(); // chatId -> tail of that chat's send chain (keeps parts in order)
  let status = { state: 'closed' };
  let lastQr = null;
  let sock = null;
  let auth = null;
  let attempts = 0;
  let reconnectTimer = null;
  let startedAt = 0;
  let stopped = false;
  let address = null;

  const server = token === undefined
    ? null
    : createServerSide({ token, host, port, authTimeoutMs, logger, onAuthenticated, onFrame });

  // ------------------------------------------------------------------ Python side

  function onAuthenticated(ws) {
    sendTo(ws, { type: 'status', ...status });
    if (lastQr) sendTo(ws, { type: 'qr', qr: lastQr });
    while (queue.length && sendTo(ws, queue[0])) queue.shift();
  }

  /** Frames that must not be lost (messages, acks) wait in a queue while no client is connected. */
  function deliver(frame) {
    if (sendTo(server?.client, frame)) return;
    queue.push(frame);
    if (queue.length > QUEUE_LIMIT) {
      const dropped = queue.shift();
      logger.warn({ type: dropped.type }, 'no client for a long time: dropped the oldest queued frame');
    }
  }

  /** Status and QR frames are only interesting live; a new client gets a snapshot instead. */
  function broadcast(frame) {
    sendTo(server?.client, frame);
  }

  function onFrame(ws, frame) {
    if (frame.type !== 'send') {
      sendTo(ws, { type: 'error', error: `unknown frame type: ${JSON.stringify(frame.type)}` });
      return;
    }
    const { requestId } = frame;
    if (typeof requestId !== 'string' || !requestId) {
      sendTo(ws, { type: 'error', error: 'send frames need a non-empty string requestId' });
      return;
    }
    handleSend(frame).then(deliver);
  }

  async function handleSend({ requestId, chatId, text }) {
    if (acked.has(requestId)) return acked.get(requestId);
    if (inflight.has(requestId)) return inflight.get(requestId);
    const pending = sendParts(requestId, chatId, text);
    inflight.set(requestId, pending);
    try {
      const ack = await pending;
      if (ack.ok) remember(acked, requestId, ack);
      return ack;
    } finally {
      inflight.delete(requestId);
    }
  }

  async function sendParts(requestId, chatId, text) {
    const fail = (error, extra = {}) => ({ type: 'ack', requestId, ok: false, error, ...extra });
    if (typeof chatId !== 'string' || !chatId.includes('@')) {
      return fail('chatId must be a WhatsApp JID such as 15551234567@s.whatsapp.net');
    }
    if (typeof text !== 'string' || !text.trim()) return fail('text must be a non-empty string');
    const parts = splitText(text, maxChunk);

    // Chain per chat so two long replies to one chat never interleave their parts.
    const previous = chatChains.get(chatId) ?? Promise.resolve();
    const run = previous.then(async () => {
      let messageId = null;
      for (let i = 0; i < parts.length; i += 1) {
        if (status.state !== 'open' || !sock) {
          return fail(`WhatsApp is not connected (state: ${status.state})`, { partsSent: i });
        }
        try {
          const sent = await sock.sendMessage(chatId, { text: parts[i] });
          messageId = sent?.key?.id ?? null;
        } catch (err) {
          const where = parts.length > 1 ? ` (part ${i + 1}/${parts.length})` : '';
          return fail(`${err?.message || String(err)}${where}`, { partsSent: i });
        }
      }
      return { type: 'ack', requestId, ok: true, messageId };
    });
    const tail = run.catch(() => {});
    chatChains.set(chatId, tail);
    tail.then(() => chatChains.get(chatId) === tail && chatChains.delete(chatId));
    return run;
  }

  // ------------------------------------------------------------------ WhatsApp side

  function setStatus(state, extra = {}) {
    const changed = state !== status.state || state === 'closed';
    status = { state, ...extra };
    if (!changed) return;
    logger.info(status, 'whatsapp status');
    broadcast({ type: 'status', ...status });
    onStatus?.(status);
  }

  async function connect() {
    reconnectTimer = null;
    if (stopped) return;
    setStatus('connecting');
    let next;
    try {
      next = await makeSocket({ auth: auth.state, logger });
    } catch (err) {
      logger.error({ err: err?.message }, 'could not create the WhatsApp socket');
      scheduleReconnect(null, err?.message || String(err));
      return;
    }
    if (stopped) {
      next.end?.(undefined);
      return;
    }
    sock = next;
    next.ev.on('creds.update', auth.saveCreds);
    // Events of a socket we already gave up on must not touch the current state.
    next.ev.on('connection.update', (update) => next === sock && onConnectionUpdate(next, update));
    next.ev.on('messages.upsert', (upsert) => next === sock && onUpsert(next, upsert));
  }

  function onConnectionUpdate(current, { connection, lastDisconnect, qr }) {
    if (qr) {
      lastQr = qr;
      broadcast({ type: 'qr', qr });
      onQr?.(qr);
    }
    if (connection === 'connecting') setStatus('connecting');
    if (connection === 'open') {
      attempts = 0;
      lastQr = null;
      setStatus('open', { me: current.user?.id ?? null });
    }
    if (connection !== 'close') return;
    sock = null;
    const error = lastDisconnect?.error;
    const statusCode = error?.output?.statusCode ?? null;
    const reason = error?.message ?? null;
    if (statusCode === DisconnectReason.loggedOut) {
      // The phone unlinked us: the stored credentials are dead, retrying would loop forever.
      setStatus('loggedOut', { statusCode, reason });
      return;
    }
    scheduleReconnect(statusCode, reason);
  }

  function scheduleReconnect(statusCode, reason) {
    if (stopped || reconnectTimer) return;
    // 515 "restart required" is the normal step right after a QR scan: reconnect at once.
    const delay = statusCode === DisconnectReason.restartRequired
      ? 0
      : Math.min(backoff.maxMs, backoff.baseMs * 2 ** attempts++);
    setStatus('closed', { statusCode, reason, retryInMs: delay });
    reconnectTimer = setTimeout(connect, delay);
  }

  function onUpsert(current, { messages }) {
    const selfJids = [current.user?.id, current.user?.lid];
    for (const msg of messages ?? []) {
      // Offline catch-up and history replays can hold old messages: answer only what came after our start.
      if (toSeconds(msg.messageTimestamp) < startedAt) continue;
      const inbound = toInbound(msg, selfJids);
      if (!inbound) continue;
      if (!remember(seenMessages, `${inbound.chatId}/${inbound.id}`)) continue;
      deliver({ type: 'message', ...inbound });
    }
  }

  return {
    /** Start serving and connecting; resolves with the WebSocket port (null in login mode). */
    async start() {
      startedAt = Math.floor(now() / 1000);
      auth = await loadAuthState(authDir);
      address = server ? await server.listen() : null;
      await connect();
      return { port: address?.port ?? null };
    },

    /** After `loggedOut`: forget the dead credentials and link again (a new QR follows). */
    async relink() {
      if (status.state !== 'loggedOut') throw new Error(`relink is only possible when logged out (state: ${status.state})`);
      // Only the JSON files Baileys' multi-file auth state writes: authDir may be user-chosen.
      const files = await readdir(authDir).catch(() => []);
      await Promise.all(files.filter((f) => f.endsWith('.json')).map((f) => rm(join(authDir, f), { force: true })));
      auth = await loadAuthState(authDir);
      attempts = 0;
      await connect();
    },

    async stop() {
      stopped = true;
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      const last = sock;
      sock = null;
      last?.end?.(undefined);
      await server?.close();
    },

    get status() {
      return { ...status };
    },
    get port() {
      return address?.port ?? null;
    },
    get authFailures() {
      return server?.counters.authFailures ?? 0;
    },
    get address() {
      return address;
    },
  };
}

/** Add `key` to a bounded memory (a Set, or a Map with `value`); false when it was already there. */
function remember(memory, key, value) {
  if (memory.has(key)) return false;
  if (memory instanceof Map) memory.set(key, value);
  else memory.add(key);
  if (memory.size > MEMORY_LIMIT) memory.delete(memory.keys().next().value);
  return true;
}
