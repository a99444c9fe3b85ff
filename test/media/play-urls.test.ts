/** Play URLs: `<base>/live/<stream>.flv?token=…` and the same over ws(s)://, whatever the configured base looks like. */
import t from 'tap';
import { buildPlayUrls } from '../../src/media/play-urls.js';
import { verifyPlayToken } from '../../src/media/play-token.js';

const SECRET = 's'.repeat(32);
const grant = { sessionId: 's-1', channelId: '44010600001310000001', nodeId: 'n-1', fence: 3, expiresAt: Date.now() + 60_000 };

t.test('bases with and without a path, a slash, a default port, https', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['http://127.0.0.1:8000', 'http://127.0.0.1:8000/live/', 'ws://127.0.0.1:8000/live/'],
    ['http://127.0.0.1:8000/', 'http://127.0.0.1:8000/live/', 'ws://127.0.0.1:8000/live/'],
    ['https://Media.Example.com:443/sub/path', 'https://media.example.com/sub/path/live/', 'wss://media.example.com/sub/path/live/'],
    ['http://media.example.com/prefix/?ignored=1#too', 'http://media.example.com/prefix/live/', 'ws://media.example.com/prefix/live/'],
  ];
  for (const [base, flvPrefix, wsPrefix] of cases) {
    const urls = buildPlayUrls(base, SECRET, grant);
    t.equal(urls.flv.split('?')[0], `${flvPrefix}${grant.channelId}.flv`, `${base}: flv`);
    t.equal(urls.wsFlv.split('?')[0], `${wsPrefix}${grant.channelId}.flv`, `${base}: ws-flv`);
    const token = new URL(urls.flv).searchParams.get('token');
    t.equal(new URL(urls.wsFlv).searchParams.get('token'), token, 'one token for both');
    t.match(verifyPlayToken(token, SECRET, { channelId: grant.channelId, now: Date.now() }), { sessionId: 's-1', fence: 3 }, 'the token verifies');
  }
});

t.test('the H.264 rendition has its own stream name and the same kind of token', async (t) => {
  const urls = buildPlayUrls('http://127.0.0.1:8000', SECRET, { ...grant, rendition: 'h264' });
  t.match(urls.flv, /\/live\/44010600001310000001_h264\.flv\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
});
