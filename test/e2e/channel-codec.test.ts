/**
 * Issue 10: a channel shows the codec its camera sends (API.md Channels `codec`), learnt by the media node on
 * the first forward: an H.265 camera over RTSP and an H.264 one over RTMP, through the broker and its embedded
 * media node; the H.265 stream plays as enhanced FLV (hvc1).
 */
import t from 'tap';
import { auth, buildTestBroker, embeddedMediaEnv, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { readFlvTags, startSimulatorProcess } from '../media/helpers.js';

const cameras = await startSimulatorProcess(t, 1, { h265Cameras: 1, rtsp: true });
const channels = {
  h265: makeChannel(1, 1, 'video', { sourceUrl: `${cameras.rtspUrls.h265[0]}#transport=udp` }),
  h264: makeChannel(2, 1, 'video', { sourceUrl: cameras.urls[0] }),
};
const tb: TestBroker = await buildTestBroker(t, { env: { ...(await embeddedMediaEnv()), BROKER_SOURCE_TIMEOUT_SECONDS: '10' }, start: true });
await tb.broker.catalog.seed(Object.values(channels));
const city = await tb.agency({ id: 'city-police' });

const api = async (method: 'GET' | 'POST', url: string, token: string, payload?: object) => {
  const res = await tb.app.inject({ method, url: `/api/v1${url}`, headers: auth(token), ...(payload && { payload }) });
  return { status: res.statusCode, body: res.body ? res.json() : null };
};

for (const [name, channel, codec] of [['H.265 over RTSP/UDP', channels.h265, 'h265'], ['H.264 over RTMP', channels.h264, 'h264']] as const) {
  t.test(`a channel fed ${name} shows codec ${codec} once it was forwarded`, async (t) => {
    const before = await api('GET', `/channels/${channel.id}`, city.operatorToken);
    t.equal(before.body.codec, undefined, 'nothing known before any forward');
    const session = await api('POST', '/streams', city.operatorToken, { channelId: channel.id, purpose: 'codec check' });
    t.equal(session.status, 201);
    const after = await api('GET', `/channels/${channel.id}`, city.operatorToken);
    t.equal(after.body.codec, codec, 'the channel shows what the camera sends');
    const tags = await readFlvTags(session.body.urls.flv, 10);
    const first = tags.find((tag) => tag.type === 9)!.data;
    if (codec === 'h265') t.equal(first.toString('latin1', 1, 5), 'hvc1', 'enhanced FLV hvc1');
    else t.equal(first[0] & 0x0f, 7, 'AVC');
  });
}
