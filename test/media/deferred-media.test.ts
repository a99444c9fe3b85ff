/**
 * The broker process does not wait for its embedded media node (a child process, about a second to answer)
 * before it opens everything else (deferred-media.ts): until the node answers, /readyz says 503 with
 * `media: false` and a call on the plane waits for it; once it does, /readyz says 200. A plane that cannot
 * start fails `mediaStarted` and every call with its reason, and closing it is harmless.
 */
import t from 'tap';
import { buildTestBroker, embeddedMediaEnv, until } from '../helper.js';
import { deferredMedia, isDeferred } from '../../src/media/deferred-media.js';
import type { RtpMediaControl } from '../../src/media/gb-play.js';

t.test('an embedded media node still starting: /readyz 503 until it answers, then 200', async (t) => {
  const tb = await buildTestBroker(t, { env: await embeddedMediaEnv(), overrides: { deferMedia: true } });
  // buildTestBroker logs in and builds the app first: the node may be up already on a fast machine.
  const first = await tb.app.inject({ method: 'GET', url: '/readyz' });
  if (first.statusCode === 503) t.match(first.json(), { status: 'not ready', checks: { store: true, media: false } }, 'not ready while the node starts');
  else t.equal(first.statusCode, 200);
  // A call on the plane waits for the node instead of failing.
  const nodes = await tb.broker.media.nodes();
  t.match(nodes, [{ id: 'embedded' }]);
  await tb.broker.mediaStarted;
  await until(t, '/readyz 200', async () => (await tb.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 15_000);
  t.match((await tb.app.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ready', checks: { store: true, media: true } });
});

t.test('by default createBroker resolves once the embedded node is up', async (t) => {
  const tb = await buildTestBroker(t, { env: await embeddedMediaEnv() });
  t.equal(await tb.broker.media.ready(), true, 'ready at once');
  t.equal((await tb.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
});

t.test('a plane that fails to start: started rejects, calls fail with its reason, ready is false, close is harmless', async (t) => {
  const plane = deferredMedia(Promise.reject(new Error('port 1935 is not available')));
  t.ok(isDeferred(plane));
  await t.rejects(plane.started, /port 1935 is not available/);
  await t.rejects(plane.nodes(), /port 1935 is not available/);
  await t.rejects(plane.startForward({ channelId: 'c', network: 'video', sourceUrl: 'rtmp://x/y', fence: 1 }), /port 1935 is not available/);
  t.equal(await plane.ready(), false);
  t.same(plane.rtpHosts(), []);
  await plane.close();
});

t.test('listeners registered before the plane is up are attached to it', async (t) => {
  let resolve!: (m: RtpMediaControl) => void;
  const plane = deferredMedia(new Promise<RtpMediaControl>((r) => (resolve = r)));
  const failed: Array<[string, number]> = [];
  plane.onForwardFailed((channelId, fence) => failed.push([channelId, fence]));
  const transcodesFailed: Array<[string, string[]]> = [];
  plane.onTranscodeFailed((channelId, sessionIds) => transcodesFailed.push([channelId, sessionIds]));
  let tell: ((channelId: string, fence: number) => void) | undefined;
  let tellTranscode: ((channelId: string, sessionIds: string[]) => void) | undefined;
  t.equal(await plane.ready(), false, 'not ready before it is up');
  const nodes = plane.nodes();
  resolve({
    onForwardFailed: (listener: (channelId: string, fence: number) => void) => (tell = listener),
    onTranscodeFailed: (listener: (channelId: string, sessionIds: string[]) => void) => (tellTranscode = listener),
    onPlayerEvents: () => undefined,
    ready: async () => true,
    nodes: async () => [],
    rtpHosts: () => ['127.0.0.1'],
    nodePid: () => 4242,
  } as unknown as RtpMediaControl);
  t.same(await nodes, [], 'a call made before it was up goes through');
  await plane.started;
  t.equal(await plane.ready(), true);
  t.same(plane.rtpHosts(), ['127.0.0.1']);
  t.equal(plane.nodePid(), 4242, "the embedded node's pid, once it is up");
  tell!('44010600001320000011', 3);
  t.same(failed, [['44010600001320000011', 3]]);
  tellTranscode!('44010600001320000011', ['s_1']);
  t.same(transcodesFailed, [['44010600001320000011', ['s_1']]], 'a transcoder past its restarts reaches the broker too');
});
