// The Python-facing side: a WebSocket on 127.0.0.1 that only talks to one authenticated client at a time.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';

export const LOOPBACK = '127.0.0.1';
export const CLOSE_AUTH_REQUIRED = 4001; // first frame missing, malformed, late or not an auth frame
export const CLOSE_REPLACED = 4002; // a newer client authenticated
export const CLOSE_BAD_TOKEN = 4003; // auth frame with the wrong token
const MAX_PAYLOAD = 4 * 1024 * 1024;

/** Constant-time token comparison (hashing first makes the lengths equal). */
export function tokenMatches(given, expected) {
  if (typeof given !== 'string' || !given) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * @param {object} opts
 * @param {string} opts.token shared secret the first frame must carry
 * @param {number} opts.port 0 picks a free port
 * @param {(ws: WebSocket) => void} opts.onAuthenticated called once a client passed auth
 * @param {(ws: WebSocket, frame: object) => void} opts.onFrame every later JSON object frame
 * @param {number} [opts.authTimeoutMs]
 * @param {object} opts.logger pino-compatible
 */
export function createServerSide({ token, host = LOOPBACK, port, onAuthenticated, onFrame, authTimeoutMs = 10_000, logger }) {
  if (host !== LOOPBACK) throw new Error(`refusing to listen on ${host}: the bridge only binds ${LOOPBACK}`);
  if (typeof token !== 'string' || !token) throw new Error('a non-empty bridge token is required');

  const http = createServer((req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end('WebSocket only\n');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD });
  const counters = { authFailures: 0 };
  let active = null;

  http.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    // Browsers always send Origin on WebSocket requests; refusing it keeps web pages out.
    if (req.headers.origin !== undefined) {
      logger.warn({ origin: req.headers.origin }, 'rejected a WebSocket request carrying an Origin header');
      rejectUpgrade(socket, 403, 'Forbidden', 'Origin header not allowed\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws));
  });

  function accept(ws) {
    let authed = false;
    const timer = setTimeout(() => fail(CLOSE_AUTH_REQUIRED, 'authentication timeout'), authTimeoutMs);
    ws.on('error', (err) => logger.warn({ err: err.message }, 'client socket error'));
    ws.on('close', () => {
      clearTimeout(timer);
      if (active === ws) active = null;
    });

    function fail(code, reason) {
      counters.authFailures += 1;
      logger.warn({ code, reason }, 'client failed authentication');
      ws.close(code, reason);
    }

    ws.on('message', (data, isBinary) => {
      const frame = isBinary ? null : parseFrame(data);
      if (!authed) {
        clearTimeout(timer);
        if (frame?.type !== 'auth') return fail(CLOSE_AUTH_REQUIRED, 'first frame must be {"type":"auth","token":...}');
        if (!tokenMatches(frame.token, token)) return fail(CLOSE_BAD_TOKEN, 'invalid token');
        authed = true;
        if (active && active.readyState === WebSocket.OPEN) active.close(CLOSE_REPLACED, 'replaced by a newer client');
        active = ws;
        onAuthenticated(ws);
        return;
      }
      if (!frame) return sendTo(ws, { type: 'error', error: 'frames must be JSON objects' });
      onFrame(ws, frame);
    });
  }

  return {
    counters,
    /** The authenticated client, if one is connected. */
    get client() {
      return active && active.readyState === WebSocket.OPEN ? active : null;
    },
    listen() {
      return new Promise((resolve, reject) => {
        http.once('error', reject);
        http.listen(port, host, () => {
          http.off('error', reject);
          resolve(http.address());
        });
      });
    },
    async close() {
      const closing = [...wss.clients].map((ws) => new Promise((resolve) => {
        ws.once('close', resolve);
        ws.close(1001, 'bridge stopping');
      }));
      // Give clients a moment to finish the close handshake, then cut whatever is left.
      await Promise.race([Promise.all(closing), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await new Promise((resolve) => http.close(() => resolve()));
    },
  };
}

/** Send one frame; false when the socket is not open (the caller decides whether to keep it). */
export function sendTo(ws, frame) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(frame));
  return true;
}

function parseFrame(data) {
  try {
    const value = JSON.parse(data.toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function rejectUpgrade(socket, status, text, body) {
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
