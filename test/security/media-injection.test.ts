/**
 * Issue 8, point 3: nothing a player, a refused session or an unauthorized publisher sends reaches a viewer
 * (markers in the injected metadata/keyframes must never appear in a viewer's bytes), over RTMP, HTTP-FLV and WS-FLV.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { ffmpegPath } from '../../src/media/ffmpeg.js';
import { until } from '../helper.js';
import { stopProcess } from '../media/helpers.js';
import {
  countResults,
  httpGet,
  rawHttp,
  rtmpConnect,
  rtmpCreateStream,
  rtmpHandshake,
  rtmpInjectedMedia,
  rtmpOpen,
  rtmpPlay,
  rtmpPublish,
  rtmpSetChunkSize,
} from './media-attacks.js';
import { CHANNEL, OTHER_CHANNEL, startMediaFixture } from './media-fixture.js';

const media = await startMediaFixture(t);

t.test('point 3: an HTTP-FLV publish (POST) is refused and its body reaches no viewer', async (t) => {
  const marker = `HTTP-POST-${randomBytes(6).toString('hex')}`;
  const flvHeader = Buffer.from([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]);
  const payload = Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), Buffer.from(marker)]);
  const tag = Buffer.alloc(11);
  tag[0] = 9;
  tag.writeUIntBE(payload.length, 1, 3);
  const prev = Buffer.alloc(4);
  prev.writeUInt32BE(11 + payload.length);
  const body = Buffer.concat([flvHeader, tag, payload, prev]);
  const reply = await rawHttp(
    media.httpPort,
    `POST /live/${CHANNEL}.flv?token=${media.token()} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    body,
  );
  t.ok(reply.status >= 400 && reply.status < 500, `POST answered ${reply.status}`);
  await media.assertNotInjected(t, marker, 'HTTP-FLV POST');
  await media.assertAlive(t, 'after an HTTP-FLV POST');
});

t.test('point 3: a WS-FLV publish is refused and what it sends reaches no viewer', async (t) => {
  const marker = `WS-PUBLISH-${randomBytes(6).toString('hex')}`;
  for (const protocol of ['publisher', 'post']) {
    const ws = new WebSocket(media.flvUrl(CHANNEL, media.token()), protocol);
    ws.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.once('open', () => ws.send(Buffer.concat([Buffer.from([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]), Buffer.from(marker)])));
    await closed;
  }
  await media.assertNotInjected(t, marker, 'WS-FLV publish');
  await media.assertAlive(t, 'after WS-FLV publishes');
});

t.test('point 3: an RTMP player with a valid token cannot put metadata or a keyframe into the stream', async (t) => {
  const marker = `RTMP-PLAYER-${randomBytes(6).toString('hex')}`;
  const rtmp = await rtmpOpen(media.node.rtmpPort);
  rtmp.write(
    Buffer.concat([rtmpHandshake(), rtmpSetChunkSize(65536), rtmpConnect(media.node.rtmpPort), rtmpCreateStream(), rtmpPlay(`${CHANNEL}?token=${media.token()}`)]),
  );
  await until(t, 'the RTMP play starts', () => rtmp.received().includes(Buffer.from('NetStream.Play.Start')) || rtmp.isClosed(), 10_000);
  t.ok(rtmp.received().includes(Buffer.from('NetStream.Play.Start')), 'a valid token plays over RTMP');
  const results = countResults(rtmp.received());
  // The trailing createStream is answered only after the server has handled the media before it.
  rtmp.write(Buffer.concat([rtmpInjectedMedia(marker, 100), rtmpInjectedMedia(marker, 200), rtmpCreateStream(9)]));
  await until(t, 'the server handled the injected media', () => countResults(rtmp.received()) > results || rtmp.isClosed(), 10_000);
  await media.assertNotInjected(t, marker, 'RTMP player');
  rtmp.destroy();
  await media.assertAlive(t, 'after an RTMP player sent media');
});

t.test('point 3: a refused publish or play with media in the same TCP write injects nothing', async (t) => {
  const attempts: Array<[string, Buffer]> = [
    ['a publish without a secret', rtmpPublish(CHANNEL)],
    ['a publish with a guessed secret', rtmpPublish(`${CHANNEL}?secret=guess`)],
    ['a play with a token of another channel', rtmpPlay(`${CHANNEL}?token=${media.token(OTHER_CHANNEL)}`)],
    ['a play without a token', rtmpPlay(CHANNEL)],
    ['a publish on another app', Buffer.concat([rtmpPublish(CHANNEL)])],
  ];
  for (const [what, command] of attempts) {
    const marker = `RTMP-REFUSED-${randomBytes(6).toString('hex')}`;
    const rtmp = await rtmpOpen(media.node.rtmpPort);
    const connect = what.includes('another app') ? rtmpConnect(media.node.rtmpPort, 'cam') : rtmpConnect(media.node.rtmpPort);
    rtmp.write(
      Buffer.concat([rtmpHandshake(), rtmpSetChunkSize(65536), connect, rtmpCreateStream(), command, rtmpInjectedMedia(marker, 100), rtmpInjectedMedia(marker, 200)]),
    );
    await until(t, `${what}: the server closes the connection`, () => rtmp.isClosed(), 10_000);
    await media.assertNotInjected(t, marker, what);
  }
  await media.assertAlive(t, 'after refused RTMP sessions with media');
});

t.test('point 3: the RTMP port accepts no publish at all, even from loopback', async (t) => {
  const rtmp = await rtmpOpen(media.node.rtmpPort);
  rtmp.write(Buffer.concat([rtmpHandshake(), rtmpSetChunkSize(65536), rtmpConnect(media.node.rtmpPort), rtmpCreateStream(), rtmpPublish(OTHER_CHANNEL)]));
  await until(t, 'the server closes the publish', () => rtmp.isClosed(), 10_000);
  t.notOk(rtmp.received().includes(Buffer.from('NetStream.Publish.Start')), 'no Publish.Start was sent');
  const res = await httpGet(media.flvUrl(OTHER_CHANNEL, media.token(OTHER_CHANNEL)));
  t.equal(res.status, 403, 'nothing plays on the channel the publish named');
});

t.test('point 3: a real RTMP player with a valid token still plays the relay’s video', async (t) => {
  const url = `rtmp://127.0.0.1:${media.node.rtmpPort}/live/${CHANNEL}?token=${media.token()}`;
  const player = spawn(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-i', url, '-t', '1', '-map', '0:v', '-c', 'copy', '-f', 'flv', 'pipe:1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => stopProcess(player));
  let bytes = 0;
  player.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
  const code = await new Promise<number | null>((resolve) => player.once('exit', resolve));
  t.equal(code, 0, 'ffmpeg read a second of video over RTMP');
  t.ok(bytes > 1000, `it received the stream (${bytes} bytes)`);
  await media.assertAlive(t, 'after an RTMP player');
});
