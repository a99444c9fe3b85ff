import t from 'tap';
import { createNoneMediaControl } from '../../src/media/media-control-none.js';
import { verifyPlayToken } from '../../src/media/play-token.js';

const playSecret = 'none-adapter-secret-0123456789';
const media = createNoneMediaControl({ playSecret, publicBaseUrl: 'https://media.example.test/base' });

t.test('forwards start at once and play URLs carry a token for the channel', async (t) => {
  t.same(await media.startForward({ channelId: 'c1', network: 'video', sourceUrl: 'rtsp://x/y', fence: 4 }), { nodeId: 'none' });
  const expiresAt = Date.now() + 30_000;
  const urls = await media.playUrls({ sessionId: 's1', channelId: 'c1', fence: 4, expiresAt });
  const flv = new URL(urls.flv);
  t.equal(`${flv.origin}${flv.pathname}`, 'https://media.example.test/base/live/c1.flv');
  t.equal(new URL(urls.wsFlv).protocol, 'wss:');
  const verdict = verifyPlayToken(flv.searchParams.get('token'), playSecret, { channelId: 'c1', now: Date.now() });
  t.same(verdict, { sessionId: 's1', channelId: 'c1', nodeId: 'none', fence: 4, expiresAt });
  t.equal(await media.ready(), true);
  t.same(await media.nodes(), []);
});
