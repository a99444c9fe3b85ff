/**
 * Issue 8, point 5: no credential on a process's command line (the relays' publish secret was in ffmpeg's argv).
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { createEmbeddedMediaControl } from '../../src/media/media-control-embedded.js';
import { findFreePort } from '../../src/media/net-ports.js';
import {
  childCommandLines,
  commandLine,
} from './media-attacks.js';
import { startMediaFixture } from './media-fixture.js';

const media = await startMediaFixture(t);

t.test('point 5: no relay or media node command line carries a secret', async (t) => {
  const lines = childCommandLines(media.node.child.pid!);
  // Issue 10: relays run inside the media node; a pass-through forward has no process of its own.
  t.notOk(lines.some((line) => line.includes('ffmpeg')), 'no ffmpeg child while the forward plays');
  for (const line of [...lines, commandLine(media.node.child.pid!)]) {
    t.notMatch(line, /secret/i, `no secret parameter in: ${line.slice(0, 120)}`);
    t.notOk(line.includes(media.node.controlSecret) || line.includes(media.node.playSecret), 'neither node secret in the argv');
    t.notOk(line.includes(`:${media.node.rtmpPort}/`), 'the relay does not publish through the RTMP port');
  }
});

t.test('point 5: the broker hands its embedded media node the secrets through the environment, not argv', async (t) => {
  const playSecret = randomBytes(24).toString('hex');
  const embedded = await createEmbeddedMediaControl({
    rtmpPort: await findFreePort(),
    httpPort: await findFreePort(),
    sourceTimeoutMs: 5000,
    playSecret,
    maxForwards: 1,
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => embedded.close());
  const pid = embedded.nodePid();
  t.ok(pid, 'the embedded media node runs');
  const argv = commandLine(pid!);
  t.notOk(argv.includes(playSecret), 'the play secret is not in its argv');
  t.notMatch(argv, /secret/i, `no secret in: ${argv}`);
});
