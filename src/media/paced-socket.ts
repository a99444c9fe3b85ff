/**
 * TCP connections for in-process relays whose reads are paced: once a relay is playing, its socket is read
 * at most once per READ_PACE_MS instead of once per packet the camera sends. A camera sends a packet every
 * few milliseconds (RTMP messages, interleaved RTP); a read, its JS callback and a buffer per packet were
 * most of what a forward cost the node besides its player writes. Between reads the kernel holds the data
 * (a 650 kbit/s camera sends ~4 KB per 50 ms, far below a socket's receive buffer; TCP flow control covers
 * the rest), so pacing adds at most READ_PACE_MS of latency and loses nothing.
 *
 * Every paced socket reads into one shared buffer (a read is handled before the next one starts), and the
 * handler gets its own copy of exactly the bytes read, which it may keep (tags are views into it).
 * @see https://nodejs.org/docs/latest-v20.x/api/net.html#socketconnectoptions-connectlistener (`onread`)
 */
import { connect, type Socket } from 'node:net';

/** How often a paced socket is read. */
export const READ_PACE_MS = 50;
/** Reads after connecting are not paced for this long (handshakes, the first frame). */
export const PACE_AFTER_MS = 2000;
/** One read's worth: what a paced socket may return in one go (many cameras' 50 ms fit). */
const READ_BUFFER_BYTES = 256 * 1024;

const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
/** Paced sockets waiting for the next tick to be read again. */
const waiting = new Set<Socket>();
let ticker: NodeJS.Timeout | null = null;

function readWaiting(): void {
  const sockets = [...waiting];
  waiting.clear();
  for (const socket of sockets) if (!socket.destroyed) socket.resume();
  if (waiting.size === 0 && sockets.length === 0 && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

export interface PacedSocket {
  readonly socket: Socket;
  /** From now on (after PACE_AFTER_MS from the call), reads are paced. */
  pace(): void;
}

/**
 * `net.connect` whose bytes go to `onData` (a fresh Buffer per read, the handler's to keep). `onData` must
 * not throw: its caller catches what its parser throws. Errors, end and close arrive as socket events.
 */
export function connectPaced(host: string, port: number, onData: (chunk: Buffer) => void): PacedSocket {
  let pacedFrom = Number.POSITIVE_INFINITY;
  const socket: Socket = connect({
    host,
    port,
    onread: {
      buffer: sharedReadBuffer,
      callback(bytes: number, buffer: Uint8Array): boolean {
        const chunk = Buffer.allocUnsafe(bytes);
        chunk.set(buffer.subarray(0, bytes));
        onData(chunk);
        if (socket.destroyed || performance.now() < pacedFrom) return true;
        waiting.add(socket);
        ticker ??= setInterval(readWaiting, READ_PACE_MS).unref();
        // false pauses the socket (its handle stops reading) until `readWaiting` resumes it.
        return false;
      },
    },
  });
  socket.once('close', () => waiting.delete(socket));
  return {
    socket,
    pace() {
      if (pacedFrom === Number.POSITIVE_INFINITY) pacedFrom = performance.now() + PACE_AFTER_MS;
    },
  };
}
