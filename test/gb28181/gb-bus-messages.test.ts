/**
 * The broker link's message format (gb-bus-messages.ts) as a table: what decodes, and why everything else is
 * dropped. Random and truncated input never throws.
 */
import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import { busKey, decodeBusMessage, encodeBusMessage, MAX_BUS_MESSAGE_BYTES, type GbBusMessage } from '../../src/gb28181/gb-bus-messages.js';

const key = busKey(randomBytes(32).toString('hex'));
const now = Date.now();
const envelope = { v: 1, id: 'm-1', from: 'broker-a', at: now } as const;
const invite = {
  ...envelope,
  kind: 'invite',
  deviceId: '44010600001180000001',
  channelId: '44010600001310000001',
  fence: 7,
  mediaIp: '10.0.0.5',
  mediaPort: 30_000,
  transport: 'tcp-passive',
  ssrc: '0100000001',
} as const;
const sign = (message: object) => encodeBusMessage(key, message as GbBusMessage);

t.test('every kind decodes as it was sent', async (t) => {
  const messages: GbBusMessage[] = [
    invite,
    { ...envelope, kind: 'invited', re: 'm-0', callRef: 'c-1', channelId: invite.channelId, fence: 7 },
    { ...envelope, kind: 'invite-failed', re: 'm-0', reason: 'bad-media-address' },
    { ...envelope, kind: 'bye', channelId: invite.channelId, fence: 7 },
    { ...envelope, kind: 'bye', channelId: invite.channelId, fence: 7, callRef: 'c-1' },
    { ...envelope, kind: 'ended', callRef: 'c-1', by: 'device' },
  ];
  for (const message of messages) t.same(decodeBusMessage(key, encodeBusMessage(key, message), now), message, message.kind);
});

t.test('dropped, with the reason', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['unsigned JSON', JSON.stringify(invite), 'unsigned'],
    ['signed with another key', encodeBusMessage(randomBytes(32), invite), 'bad signature'],
    ['signature of other content', `${sign(invite).split('.')[0]}.${JSON.stringify({ ...invite, mediaIp: '10.0.0.6' })}`, 'bad signature'],
    ['longer than the limit', sign({ ...invite, pad: 'x'.repeat(MAX_BUS_MESSAGE_BYTES) }), 'too long'],
    ['signed, not JSON', `${createHmac('sha256', key).update('{').digest('base64url')}.{`, 'not JSON'],
    ['an array', sign([invite]), 'not an object'],
    ['another version', sign({ ...invite, v: 2 }), 'unknown kind'],
    ['an unknown kind', sign({ ...invite, kind: 'register' }), 'unknown kind'],
    ['kind from the prototype', sign({ ...invite, kind: 'constructor' }), 'unknown kind'],
    ['an unknown field', sign({ ...invite, sdp: 'v=0' }), 'unknown field'],
    ['a field of another kind', sign({ ...invite, callRef: 'c-1' }), 'unknown field'],
    ['a bad sender id', sign({ ...invite, from: 'a b' }), 'bad envelope'],
    ['an old message', sign({ ...invite, at: now - 60_000 }), 'stale'],
    ['a message from the future', sign({ ...invite, at: now + 60_000 }), 'stale'],
    ['a host name for the RTP address', sign({ ...invite, mediaIp: 'media.example.com' }), 'bad invite fields'],
    ['an SDP injection in the address', sign({ ...invite, mediaIp: '10.0.0.5\r\nc=IN IP4 1.2.3.4' }), 'bad invite fields'],
    ['an octet out of range', sign({ ...invite, mediaIp: '10.0.0.256' }), 'bad invite fields'],
    ['port 0', sign({ ...invite, mediaPort: 0 }), 'bad invite fields'],
    ['port 65536', sign({ ...invite, mediaPort: 65_536 }), 'bad invite fields'],
    ['a short device id', sign({ ...invite, deviceId: '4401' }), 'bad invite fields'],
    ['a channel id with letters', sign({ ...invite, channelId: '4401060000131000000a' }), 'bad invite fields'],
    ['a negative fence', sign({ ...invite, fence: -1 }), 'bad invite fields'],
    ['an SSRC of 11 digits', sign({ ...invite, ssrc: '01000000011' }), 'bad invite fields'],
    ['an unknown transport', sign({ ...invite, transport: 'tcp-active' }), 'bad invite fields'],
    ['an unknown refusal', sign({ ...envelope, kind: 'invite-failed', re: 'm-0', reason: 'because' }), 'bad invite-failed fields'],
    ['an ended without who', sign({ ...envelope, kind: 'ended', callRef: 'c-1' }), 'bad ended fields'],
  ];
  for (const [what, raw, reason] of cases) t.same(decodeBusMessage(key, raw, now), { dropped: reason }, what);
});

t.test('random and truncated input never throws', async (t) => {
  const good = sign(invite);
  let decoded = 0;
  for (let i = 0; i < 2000; i++) {
    const raw = i % 2 === 0 ? good.slice(0, Math.floor(Math.random() * good.length)) : randomBytes(Math.floor(Math.random() * 2048)).toString('latin1');
    const result = decodeBusMessage(key, raw, now);
    if (!('dropped' in result)) decoded++;
  }
  t.equal(decoded, 0, 'none of it decodes');
});
