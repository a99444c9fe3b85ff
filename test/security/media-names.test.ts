/**
 * Issue 8, point 2: the media node's HTTP-FLV, WS-FLV and RTMP ports fed malformed names, queries, tokens,
 * methods and garbage: each is refused before node-media-server sees it, and the node stays up.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { until } from '../helper.js';
import {
  rawHttp,
  rtmpConnect,
  rtmpCreateStream,
  rtmpHandshake,
  rtmpInvoke,
  rtmpMessage,
  rtmpOpen,
  rtmpPlay,
  rtmpSetChunkSize,
} from './media-attacks.js';
import { CHANNEL, OTHER_CHANNEL, startMediaFixture } from './media-fixture.js';

const media = await startMediaFixture(t);

const upgradeHead = (path: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

/** Paths that are not `/live/<stream key>.flv`: each must be refused before node-media-server sees it. */
const BAD_PATHS: Array<[string, string]> = [
  ['a dot in the name', '/live/a.b.flv'],
  ['a dot in the channel name', `/live/${CHANNEL}.x.flv`],
  ['an encoded space', '/live/a%20b.flv'],
  ['an encoded traversal', `/live/..%2f..%2f${CHANNEL}.flv`],
  ['an upper-case encoded traversal', `/live/..%2F${CHANNEL}.flv`],
  ['a traversal of the app', '/%2e%2e/live/x.flv'],
  ['bad %-encoding', '/live/%E0%A4%A.flv'],
  ['non-hex %-encoding', '/live/%zz.flv'],
  ['raw non-ASCII bytes', '/live/\xff\xfe\x01.flv'],
  ['raw UTF-8', '/live/摄像头.flv'],
  ['an empty name', '/live/.flv'],
  ['an empty app', '//x.flv'],
  ['another app', `/cam/${CHANNEL}.flv`],
  ['an extra segment', `/live/${CHANNEL}.flv/x`],
  ['a long name', `/live/${'a'.repeat(8000)}.flv`],
  ['a name beyond the header limit', `/live/${'a'.repeat(20_000)}.flv`],
  ['a name of 65 characters', `/live/${'a'.repeat(65)}.flv`],
  ['an upper-case extension', `/live/${CHANNEL}.FLV`],
  ['no extension', `/live/${CHANNEL}`],
];

t.test('point 2: HTTP-FLV requests with malformed names are refused and the node survives them', async (t) => {
  for (const [what, path] of BAD_PATHS) {
    const reply = await rawHttp(media.httpPort, Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 'latin1'));
    t.ok(reply.status >= 400 && reply.status < 500, `${what}: ${reply.status} is a 4xx`);
    t.notOk(reply.text.includes('FLV\u0001'), `${what}: no FLV byte`);
  }
  await media.assertAlive(t, 'after malformed HTTP-FLV names');
});

t.test('point 2: HTTP-FLV queries, tokens and methods that are not a play are refused', async (t) => {
  const valid = media.token();
  const tampered = `${valid.split('.')[0]}x.${valid.split('.')[1]}`;
  const cases: Array<[string, string, string]> = [
    ['no token', 'GET', `/live/${CHANNEL}.flv`],
    ['an empty token', 'GET', `/live/${CHANNEL}.flv?token=`],
    ['a garbage token', 'GET', `/live/${CHANNEL}.flv?token=garbage`],
    ['a tampered token', 'GET', `/live/${CHANNEL}.flv?token=${tampered}`],
    ['a token of another channel', 'GET', `/live/${CHANNEL}.flv?token=${media.token(OTHER_CHANNEL)}`],
    ['two tokens', 'GET', `/live/${CHANNEL}.flv?token=${valid}&token=${valid}`],
    ['a token object', 'GET', `/live/${CHANNEL}.flv?token[a]=${valid}`],
    ['a bad %-encoded token', 'GET', `/live/${CHANNEL}.flv?token=%ZZ`],
    ['an unknown parameter', 'GET', `/live/${CHANNEL}.flv?token=${valid}&sign=1-2`],
    ['a huge token', 'GET', `/live/${CHANNEL}.flv?token=${'A'.repeat(6000)}`],
    ['a DELETE', 'DELETE', `/live/${CHANNEL}.flv?token=${valid}`],
    ['an OPTIONS elsewhere', 'OPTIONS', '/live/a.b.flv'],
    ['the NMS API', 'GET', '/api/v1/streams'],
    ['the NMS admin', 'GET', '/admin/'],
  ];
  for (const [what, method, path] of cases) {
    const reply = await rawHttp(media.httpPort, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    t.ok(reply.status >= 400 && reply.status < 500, `${what}: ${reply.status} is a 4xx`);
    t.notOk(reply.text.includes('FLV\u0001'), `${what}: no FLV byte`);
  }
  const preflight = await rawHttp(
    media.httpPort,
    `OPTIONS /live/${CHANNEL}.flv?token=${valid} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://console\r\nConnection: close\r\n\r\n`,
  );
  t.equal(preflight.status, 204, 'a CORS preflight of a play URL is answered (by the guard, not NMS)');
  t.match(preflight.text, /access-control-allow-origin: \*/i);
  await media.assertAlive(t, 'after bad HTTP-FLV queries');
});

t.test('point 2: WS-FLV upgrades with malformed names or queries are refused and the node survives them', async (t) => {
  const valid = media.token();
  const cases: Array<[string, string]> = [
    ...BAD_PATHS,
    ['no token', `/live/${CHANNEL}.flv`],
    ['two tokens', `/live/${CHANNEL}.flv?token=${valid}&token=${valid}`],
    ['a token object', `/live/${CHANNEL}.flv?token[a]=${valid}`],
    ['a bad %-encoded token', `/live/${CHANNEL}.flv?token=%ZZ`],
    ['a dot and a token', `/live/a.b.flv?token=${valid}`],
  ];
  for (const [what, path] of cases) {
    const reply = await rawHttp(media.httpPort, Buffer.from(upgradeHead(path), 'latin1'));
    t.ok(reply.status >= 400 && reply.status < 500, `WS ${what}: ${reply.status} is a 4xx`);
  }
  await media.assertAlive(t, 'after malformed WS-FLV upgrades');
});

t.test('point 2: garbage RTMP handshakes, chunks and commands do not take the node down', async (t) => {
  const hs = rtmpHandshake();
  const attacks: Array<[string, Buffer]> = [
    ['random bytes', randomBytes(5000)],
    ['a handshake then random chunks', Buffer.concat([hs, randomBytes(20_000)])],
    ['a connect whose tcUrl is no URL', Buffer.concat([hs, rtmpInvoke({ cmd: 'connect', transId: 1, cmdObj: { app: 'live', tcUrl: 'not a url' } })])],
    ['a connect without a command object', Buffer.concat([hs, rtmpInvoke({ cmd: 'connect', transId: 1 })])],
    ['a play without a stream name', Buffer.concat([hs, rtmpConnect(media.node.rtmpPort), rtmpInvoke({ cmd: 'play', transId: 3, cmdObj: null }, 1)])],
    ['a publish without a stream name', Buffer.concat([hs, rtmpConnect(media.node.rtmpPort), rtmpInvoke({ cmd: 'publish', transId: 3, cmdObj: null }, 1)])],
    ['a play of a dotted name', Buffer.concat([hs, rtmpConnect(media.node.rtmpPort), rtmpPlay(`a.b?token=${media.token()}`)])],
    ['a play of a traversal', Buffer.concat([hs, rtmpConnect(media.node.rtmpPort), rtmpPlay('../../x')])],
    ['a play before connect', Buffer.concat([hs, rtmpPlay(`${CHANNEL}?token=${media.token()}`)])],
    ['a short set-chunk-size', Buffer.concat([hs, rtmpMessage(2, 1, 0, Buffer.from([1]))])],
    ['a zero chunk size', Buffer.concat([hs, rtmpSetChunkSize(0), rtmpConnect(media.node.rtmpPort)])],
    ['a short window-ack-size', Buffer.concat([hs, rtmpMessage(2, 5, 0, Buffer.alloc(0))])],
    ['a message declaring 16 MiB', Buffer.concat([hs, rtmpMessage(3, 20, 0, Buffer.alloc(0)).fill(0xff, 4, 7), randomBytes(1000)])],
    ['an AMF3 command of garbage', Buffer.concat([hs, rtmpMessage(3, 17, 0, randomBytes(200))])],
    ['an AMF0 command of garbage', Buffer.concat([hs, rtmpMessage(3, 20, 0, randomBytes(200))])],
  ];
  for (const [what, bytes] of attacks) {
    const rtmp = await rtmpOpen(media.node.rtmpPort);
    rtmp.write(bytes);
    // Either the server closes it, or it keeps waiting for more: both are fine once the node is still up.
    await Promise.race([rtmp.closed, new Promise((resolve) => setTimeout(resolve, 200))]);
    rtmp.destroy();
    t.equal(media.node.child.exitCode, null, `${what}: the node is still running`);
  }
  await media.assertAlive(t, 'after garbage RTMP');
});

t.test('point 2: an RTMP connection that never plays is closed, one that plays is kept', async (t) => {
  const idle = await rtmpOpen(media.node.rtmpPort);
  const handshakeOnly = await rtmpOpen(media.node.rtmpPort);
  handshakeOnly.write(rtmpHandshake());
  const player = await rtmpOpen(media.node.rtmpPort);
  player.write(Buffer.concat([rtmpHandshake(), rtmpSetChunkSize(65536), rtmpConnect(media.node.rtmpPort), rtmpCreateStream(), rtmpPlay(`${CHANNEL}?token=${media.token()}`)]));
  await until(t, 'silent RTMP connections are closed', () => idle.isClosed() && handshakeOnly.isClosed(), 20_000);
  t.ok(idle.isClosed(), 'a connection that sends nothing is closed');
  t.ok(handshakeOnly.isClosed(), 'a connection that stops after the handshake is closed');
  t.notOk(player.isClosed(), 'a playing RTMP connection stays');
  player.destroy();
  await media.assertAlive(t, 'after idle RTMP connections');
});
