import t from 'tap';
import { signPlayToken, verifyPlayToken, type PlayTokenPayload } from '../../src/media/play-token.js';

const secret = 'play-secret-for-tests-0123456789';
const now = 1_700_000_000_000;
const payload: PlayTokenPayload = {
  sessionId: 's-1',
  channelId: '44010600001320000001',
  nodeId: 'node-a',
  fence: 7,
  expiresAt: now + 60_000,
};
const token = signPlayToken(payload, secret);
const [body, sig] = token.split('.');

function flipFirstChar(s: string): string {
  return (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
}

t.test('a fresh token for the right channel verifies to its payload', async (t) => {
  t.same(verifyPlayToken(token, secret, { channelId: payload.channelId, now }), payload);
});

t.test('token format is compact base64url(payload).base64url(mac)', async (t) => {
  t.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  t.same(JSON.parse(Buffer.from(body, 'base64url').toString()), payload);
});

const forgedBody = Buffer.from(JSON.stringify({ ...payload, fence: 8 })).toString('base64url');
const rejections: Array<[string, unknown, { channelId: string; now: number }, string, string?]> = [
  ['expired', token, { channelId: payload.channelId, now: payload.expiresAt }, 'expired'],
  ['other channel', token, { channelId: '44010600001320000002', now }, 'wrong-channel'],
  ['tampered payload', `${forgedBody}.${sig}`, { channelId: payload.channelId, now }, 'bad-signature'],
  ['tampered signature', `${body}.${flipFirstChar(sig)}`, { channelId: payload.channelId, now }, 'bad-signature'],
  ['other secret', token, { channelId: payload.channelId, now }, 'bad-signature', 'another-secret'],
  ['empty', '', { channelId: payload.channelId, now }, 'malformed'],
  ['not a string', 42, { channelId: payload.channelId, now }, 'malformed'],
  ['array (repeated query parameter)', [token, token], { channelId: payload.channelId, now }, 'malformed'],
  ['no dot', body, { channelId: payload.channelId, now }, 'malformed'],
  ['three parts', `${token}.x`, { channelId: payload.channelId, now }, 'malformed'],
  ['short mac', `${body}.${sig.slice(0, 20)}`, { channelId: payload.channelId, now }, 'malformed'],
  ['too long', 'a'.repeat(2000), { channelId: payload.channelId, now }, 'malformed'],
];

for (const [name, candidate, expected, error, otherSecret] of rejections) {
  t.test(`rejects: ${name}`, async (t) => {
    t.same(verifyPlayToken(candidate, otherSecret ?? secret, expected), { error });
  });
}

t.test('a correctly signed payload of the wrong shape is malformed', async (t) => {
  const bad = signPlayToken({ ...payload, fence: 1.5 }, secret);
  t.same(verifyPlayToken(bad, secret, { channelId: payload.channelId, now }), { error: 'malformed' });
});
