/**
 * Play tokens: the proof a player carries in `?token=` that the broker granted a session on a channel.
 * Compact form `base64url(payload JSON) + "." + base64url(HMAC-SHA256(secret, first part))`.
 *
 * Verification is synchronous because node-media-server's `prePlay` event cannot wait for I/O, and the
 * MAC is compared in constant time (NMS's own md5 URL signing does neither).
 * @see https://datatracker.ietf.org/doc/html/rfc2104 (HMAC)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface PlayTokenPayload {
  sessionId: string;
  channelId: string;
  /** Media node the session was placed on (informational; the fence is what binds it to a forward). */
  nodeId: string;
  /** Fencing token of the channel's forward the session belongs to. */
  fence: number;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export type PlayTokenRejection = 'malformed' | 'bad-signature' | 'expired' | 'wrong-channel';

/** Tokens are short; anything longer is not ours and is refused before any hashing. */
const MAX_TOKEN_LENGTH = 1024;
const MAC_LENGTH = 32;

function mac(encodedPayload: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(encodedPayload).digest();
}

export function signPlayToken(payload: PlayTokenPayload, secret: string): string {
  const body: PlayTokenPayload = {
    sessionId: payload.sessionId,
    channelId: payload.channelId,
    nodeId: payload.nodeId,
    fence: payload.fence,
    expiresAt: payload.expiresAt,
  };
  const encoded = Buffer.from(JSON.stringify(body)).toString('base64url');
  return `${encoded}.${mac(encoded, secret).toString('base64url')}`;
}

function isPayload(value: unknown): value is PlayTokenPayload {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.sessionId === 'string' &&
    typeof p.channelId === 'string' &&
    typeof p.nodeId === 'string' &&
    Number.isSafeInteger(p.fence) &&
    Number.isSafeInteger(p.expiresAt)
  );
}

/** Checks the MAC first (constant time), then expiry and channel. Never throws. */
export function verifyPlayToken(
  token: unknown,
  secret: string,
  expected: { channelId: string; now: number },
): PlayTokenPayload | { error: PlayTokenRejection } {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return { error: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 2 || parts[0].length === 0) return { error: 'malformed' };
  const [encoded, givenMac] = parts;
  const given = Buffer.from(givenMac, 'base64url');
  // Re-encoding rejects non-canonical spellings (unused low bits, stray characters) of the same MAC.
  if (given.length !== MAC_LENGTH || given.toString('base64url') !== givenMac) return { error: 'malformed' };
  if (!timingSafeEqual(given, mac(encoded, secret))) return { error: 'bad-signature' };

  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    return { error: 'malformed' };
  }
  if (!isPayload(payload)) return { error: 'malformed' };
  if (payload.expiresAt <= expected.now) return { error: 'expired' };
  if (payload.channelId !== expected.channelId) return { error: 'wrong-channel' };
  return payload;
}
