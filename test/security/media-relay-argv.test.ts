/**
 * Issue 8, point 5: no credential on a process's command line (the relays' publish secret was in ffmpeg's argv).
 */
import t from 'tap';
import {
  childCommandLines,
  commandLine,
} from './media-attacks.js';
import { startMediaFixture } from './media-fixture.js';

const media = await startMediaFixture(t);

t.test('point 5: no relay or media node command line carries a secret', async (t) => {
  const lines = childCommandLines(media.node.child.pid!);
  t.ok(lines.some((line) => line.includes('ffmpeg')), 'the relay ffmpeg is a child of the media node');
  for (const line of [...lines, commandLine(media.node.child.pid!)]) {
    t.notMatch(line, /secret/i, `no secret parameter in: ${line.slice(0, 120)}`);
    t.notOk(line.includes(media.node.controlSecret) || line.includes(media.node.playSecret), 'neither node secret in the argv');
    t.notOk(line.includes(`:${media.node.rtmpPort}/`), 'the relay does not publish through the RTMP port');
  }
});
