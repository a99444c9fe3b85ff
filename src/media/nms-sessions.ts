/**
 * Closing node-media-server sessions from its synchronous events. NMS gives no way to veto a play or a
 * publish from `prePlay`/`prePublish`, but it writes to the connection only while it is open
 * (FlvSession.sendBuffer checks `writableEnded` / `readyState`), so ending the connection inside the
 * event keeps every FLV byte off the wire.
 * @see node_modules/node-media-server/src/session/flv_session.js
 * @see node_modules/node-media-server/src/server/broadcast_server.js postPlay
 */
import type { ServerResponse } from 'node:http';
import type { NmsSession } from 'node-media-server';
import { WebSocket } from 'ws';
import { silence } from './nms-guard.js';

/** Time a WebSocket player gets to answer the close frame before its socket is dropped. */
const WS_CLOSE_GRACE_MS = 1000;
/** RFC 6455 §7.4.1: 1008 = policy violation. */
const WS_POLICY_VIOLATION = 1008;

function closeWebSocket(ws: WebSocket, reason: string): void {
  ws.close(WS_POLICY_VIOLATION, reason);
  setTimeout(() => ws.terminate(), WS_CLOSE_GRACE_MS).unref();
}

/**
 * Refuse a play or publish before media flows: HTTP-FLV gets a 403 with no FLV byte, WS-FLV a close
 * frame, RTMP a dropped socket.
 */
export function refuseSession(session: NmsSession, status: 401 | 403): void {
  // Whatever else the refused client already sent (RTMP commands, media in the same read) is discarded.
  silence(session);
  const { res, req, socket } = session;
  if (res instanceof WebSocket) {
    closeWebSocket(res, 'forbidden');
  } else if (res && req) {
    const response = res as ServerResponse;
    if (!response.headersSent) {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    }
    // The socket goes too, so NMS's close handler removes the refused session from its subscribers.
    response.end(status === 401 ? 'token required\n' : 'forbidden\n', () => req.socket.destroy());
  } else {
    socket?.destroy();
  }
}

/** Cut a connected player (session ended, forward stopped). */
export function cutPlayer(session: NmsSession): void {
  silence(session);
  const { res, req, socket } = session;
  if (res instanceof WebSocket) closeWebSocket(res, 'session ended');
  else if (req) req.socket.destroy();
  else socket?.destroy();
}
