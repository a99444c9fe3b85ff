/**
 * TCP connections for in-process relays whose reads are paced: once a relay is playing, its socket is read
 * once per media tick (media-tick.ts, MEDIA_TICK_MS) instead of once per packet the camera sends. A camera sends a packet every
 * few milliseconds (RTMP messages, interleaved RTP); a read, its JS callback and a buffer per packet were
 * most of what a forward cost the node besides its player writes. Between reads the kernel holds the data
 * (a 650 kbit/s camera sends ~8 KB per 100 ms, far below a socket's receive buffer; TCP flow control covers
 * the rest), so pacing adds at most a tick of latency and loses nothing.
 *
 * Every paced socket reads into one shared buffer (a read is handled before the next one starts), and the
 * handler gets its own copy of exactly the bytes read, which it may keep (tags are views into it): a view of
 * a 64 KiB slab, as Node's own buffer pool does for small buffers, so a read costs no allocation of its own.
 * @see https://nodejs.org/docs/latest-v20.x/api/net.html#socketconnectoptions-connectlistener (`onread`)
 */
import { connect, type Socket } from 'node:net';
import { atNextTick, mediaTickMs } from './media-tick.js';

/** Reads after connecting are not paced for this long (handshakes, the first frame). */
export const PACE_AFTER_MS = 2000;
/** One read's worth: what a paced socket may return in one go (a tick of a 20 Mbit/s camera fits). */
const READ_BUFFER_BYTES = 256 * 1024;

/** Reads are copied out into slabs of this size (a fresh allocation per read made the GC the largest cost). */
const SLAB_BYTES = 64 * 1024;

const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabOffset = 0;

/** The `bytes` first bytes of `buffer` as a view of the current slab (a new one when it is full). */
function slabCopy(buffer: Uint8Array, bytes: number): Buffer {
  if (bytes > SLAB_BYTES / 4) return Buffer.from(buffer.subarray(0, bytes));
  if (slabOffset + bytes > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabOffset = 0;
  }
  const chunk = slab.subarray(slabOffset, slabOffset + bytes);
  chunk.set(buffer.subarray(0, bytes));
  // Views stay 8-byte aligned, as Node's own pool keeps them.
  slabOffset += (bytes + 7) & ~7;
  return chunk;
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
        const chunk = slabCopy(buffer, bytes);
        onData(chunk);
        if (socket.destroyed || performance.now() < pacedFrom || mediaTickMs() === 0) return true;
        // A read that filled the buffer left more in the kernel: a source sending more than a buffer per tick
        // (a high-bitrate camera, a burst after a stall) is read on at once, not held to one buffer a tick.
        if (bytes === READ_BUFFER_BYTES) return true;
        atNextTick(resume);
        // false pauses the socket (its handle stops reading) until the next media tick resumes it.
        return false;
      },
    },
  });
  const resume = () => {
    if (!socket.destroyed) socket.resume();
  };
  return {
    socket,
    pace() {
      if (pacedFrom === Number.POSITIVE_INFINITY) pacedFrom = performance.now() + PACE_AFTER_MS;
    },
  };
}
