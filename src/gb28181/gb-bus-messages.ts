/**
 * What brokers tell each other about GB/T 28181 calls (DESIGN.md: a device's registration belongs to the broker it
 * registered with, and another broker asks that one to INVITE). Small, flat, every field bounded and checked, and
 * signed: `<HMAC-SHA256 base64url>.<JSON>`, the key derived from the control secret every broker of a city shares.
 * Anything else on the wire — too long, unsigned, signed with another key, unknown kinds or fields, stale, replayed —
 * is dropped before it is acted on. A valid signature only says a broker of this city sent it; what it asks is
 * checked again by the broker that acts (gb-calls.ts: the device is registered there, the channel is that device's,
 * the RTP address is one of the city's media nodes).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The longest message the bus carries (an INVITE request is ~400 bytes). */
export const MAX_BUS_MESSAGE_BYTES = 1024;
/** A message older or newer than this (brokers' clocks) is dropped; ids are remembered twice as long. */
export const MAX_BUS_MESSAGE_AGE_MS = 30_000;

export type InviteRefusal = 'unknown-device' | 'unknown-channel' | 'bad-media-address' | 'source-unavailable';
const REFUSALS: readonly InviteRefusal[] = ['unknown-device', 'unknown-channel', 'bad-media-address', 'source-unavailable'];

interface Envelope {
  v: 1;
  /** Unique per message (replays are dropped). */
  id: string;
  /** The sending broker's GB instance id (its bus address). */
  from: string;
  /** ms since the epoch, the sender's clock. */
  at: number;
}

/** Please INVITE the device's channel to this RTP port (the asker opened it on a media node). */
export interface InviteRequest extends Envelope {
  kind: 'invite';
  deviceId: string;
  channelId: string;
  fence: number;
  mediaIp: string;
  mediaPort: number;
  transport: 'udp' | 'tcp-passive';
  ssrc: string;
}

/** The device answered: the call is held by the sender under `callRef`. */
export interface InviteAnswer extends Envelope {
  kind: 'invited';
  re: string;
  callRef: string;
  channelId: string;
  fence: number;
}

export interface InviteRefused extends Envelope {
  kind: 'invite-failed';
  re: string;
  reason: InviteRefusal;
}

/** Hang up: the call `callRef`, or (from a broker that does not know it) the channel's call of this fence or older. */
export interface ByeRequest extends Envelope {
  kind: 'bye';
  channelId: string;
  fence: number;
  callRef?: string;
}

/** The call is over: the device hung up or went offline (`device`), or another broker asked for the BYE (`broker`). */
export interface CallEnded extends Envelope {
  kind: 'ended';
  callRef: string;
  by: 'device' | 'broker';
}

export type GbBusMessage = InviteRequest | InviteAnswer | InviteRefused | ByeRequest | CallEnded;
/** A message to send, before the envelope's `v`, `id`, `from` and `at` are filled in. */
export type GbBusDraft = GbBusMessage extends infer M ? (M extends GbBusMessage ? Omit<M, keyof Envelope> : never) : never;

/** HMAC-SHA256 in base64url, unpadded. */
const SIGNATURE_CHARS = 43;
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const ID = /^[A-Za-z0-9-]{1,64}$/;
const GB_ID = /^[0-9]{20}$/;
const SSRC = /^[01][0-9]{9}$/;
/** Dotted IPv4 only: the address goes into the SDP `c=` line the device sends to. */
const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;

const FIELDS: Record<GbBusMessage['kind'], readonly string[]> = {
  invite: ['deviceId', 'channelId', 'fence', 'mediaIp', 'mediaPort', 'transport', 'ssrc'],
  invited: ['re', 'callRef', 'channelId', 'fence'],
  'invite-failed': ['re', 'reason'],
  bye: ['channelId', 'fence', 'callRef'],
  ended: ['callRef', 'by'],
};
const ENVELOPE = ['v', 'kind', 'id', 'from', 'at'];

/** The bus key of a city: derived, so the control secret itself never signs anything but control calls. */
export function busKey(controlSecret: string): Buffer {
  return createHmac('sha256', controlSecret).update('sharp-eyes gb28181 broker bus v1').digest();
}

const signatureOf = (key: Buffer, json: string) => createHmac('sha256', key).update(json).digest('base64url');

export function encodeBusMessage(key: Buffer, message: GbBusMessage): string {
  const json = JSON.stringify(message);
  return `${signatureOf(key, json)}.${json}`;
}

const isFence = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const matches = (value: unknown, pattern: RegExp): value is string => typeof value === 'string' && pattern.test(value);

/** The message, or why it was dropped. Never throws. */
export function decodeBusMessage(key: Buffer, raw: string, now: number): GbBusMessage | { dropped: string } {
  if (typeof raw !== 'string' || raw.length > MAX_BUS_MESSAGE_BYTES) return { dropped: 'too long' };
  const dot = raw.indexOf('.');
  if (dot !== SIGNATURE_CHARS || !SIGNATURE.test(raw.slice(0, dot))) return { dropped: 'unsigned' };
  const json = raw.slice(dot + 1);
  const given = Buffer.from(raw.slice(0, dot));
  const expected = Buffer.from(signatureOf(key, json));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { dropped: 'bad signature' };
  let body: unknown;
  try {
    body = JSON.parse(json);
  } catch {
    return { dropped: 'not JSON' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { dropped: 'not an object' };
  const m = body as Record<string, unknown>;
  if (m.v !== 1 || typeof m.kind !== 'string' || !Object.hasOwn(FIELDS, m.kind)) return { dropped: 'unknown kind' };
  const kind = m.kind as GbBusMessage['kind'];
  if (Object.keys(m).some((field) => !ENVELOPE.includes(field) && !FIELDS[kind].includes(field))) return { dropped: 'unknown field' };
  if (!matches(m.id, ID) || !matches(m.from, ID) || typeof m.at !== 'number' || !Number.isSafeInteger(m.at)) return { dropped: 'bad envelope' };
  if (Math.abs(now - m.at) > MAX_BUS_MESSAGE_AGE_MS) return { dropped: 'stale' };
  const ok = (() => {
    switch (kind) {
      case 'invite':
        return (
          matches(m.deviceId, GB_ID) &&
          matches(m.channelId, GB_ID) &&
          isFence(m.fence) &&
          matches(m.mediaIp, IPV4) &&
          typeof m.mediaPort === 'number' &&
          Number.isInteger(m.mediaPort) &&
          m.mediaPort >= 1 &&
          m.mediaPort <= 65535 &&
          (m.transport === 'udp' || m.transport === 'tcp-passive') &&
          matches(m.ssrc, SSRC)
        );
      case 'invited':
        return matches(m.re, ID) && matches(m.callRef, ID) && matches(m.channelId, GB_ID) && isFence(m.fence);
      case 'invite-failed':
        return matches(m.re, ID) && (REFUSALS as readonly unknown[]).includes(m.reason);
      case 'bye':
        return matches(m.channelId, GB_ID) && isFence(m.fence) && (m.callRef === undefined || matches(m.callRef, ID));
      case 'ended':
        return matches(m.callRef, ID) && (m.by === 'device' || m.by === 'broker');
    }
  })();
  return ok ? (m as unknown as GbBusMessage) : { dropped: `bad ${kind} fields` };
}
