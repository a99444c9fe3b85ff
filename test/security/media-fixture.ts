/**
 * One real media node process relaying one simulated camera, with a viewer ("the witness", another
 * agency's player) watching through every attack a test file makes. `assertAlive` and `assertNotInjected`
 * are the two outcomes every media attack is judged by.
 */
import type { Test } from 'tap';
import { signPlayToken } from '../../src/media/play-token.js';
import { until } from '../helper.js';
import { startMediaNodeProcess, startSimulatorProcess, type MediaNodeProcess } from '../media/helpers.js';
import { watchHttpFlv } from './media-attacks.js';

export const CHANNEL = '44010600001320000001';
export const OTHER_CHANNEL = '44010600001320000002';

export interface MediaFixture {
  node: MediaNodeProcess;
  httpPort: number;
  token(channelId?: string, fence?: number): string;
  flvUrl(channelId: string, token: string): string;
  /** True once the node process has exited: every wait gives up at once then. */
  gone(): boolean;
  assertAlive(t: Test, what: string): Promise<void>;
  assertNotInjected(t: Test, marker: string, what: string): Promise<void>;
}

/** `env`: extra MEDIA_* variables of the node (limits a test wants small). */
export async function startMediaFixture(t: Test, env: Record<string, string> = {}): Promise<MediaFixture> {
  const node = await startMediaNodeProcess(t, { sourceTimeoutMs: 8000, env });
  const simulator = await startSimulatorProcess(t, 1);
  const httpPort = Number(new URL(node.playBaseUrl).port);
  let sessions = 0;
  const token = (channelId = CHANNEL, fence = 1) => {
    sessions += 1;
    return signPlayToken(
      { sessionId: `s-attack-${sessions}`, channelId, nodeId: 'test-node', fence, expiresAt: Date.now() + 300_000 },
      node.playSecret,
    );
  };
  const flvUrl = (channelId: string, tok: string) => `${node.playBaseUrl}/live/${channelId}.flv?token=${encodeURIComponent(tok)}`;
  const gone = () => node.child.exitCode !== null || node.child.signalCode !== null;

  const started = await node.control('POST', '/forwards', { channelId: CHANNEL, sourceUrl: simulator.urls[0], fence: 1 });
  if (started.status !== 200) throw new Error(`forward did not start: ${JSON.stringify(started)}`);
  const witness = await watchHttpFlv(flvUrl(CHANNEL, token()));
  t.teardown(() => witness.stop());

  return {
    node,
    httpPort,
    token,
    flvUrl,
    gone,
    async assertAlive(t, what) {
      if (gone()) {
        t.fail(`${what}: the media node process exited (${node.child.exitCode ?? node.child.signalCode})`);
        return;
      }
      try {
        const load = await node.control('GET', '/load');
        t.equal(load.status, 200, `${what}: GET /load answers`);
      } catch (error) {
        t.fail(`${what}: control API unreachable (${(error as Error).message})`);
        return;
      }
      const seen = witness.reader.keyframes();
      await until(t, `${what}: the watching viewer keeps receiving keyframes`, () => gone() || witness.reader.keyframes() > seen, 10_000);
      t.ok(witness.reader.keyframes() > seen, `${what}: the watching viewer received a new keyframe`);
      t.notOk(witness.closed(), `${what}: the watching viewer is still connected`);
    },
    async assertNotInjected(t, marker, what) {
      const seen = witness.reader.keyframes();
      await until(t, `${what}: two more keyframes reach the watching viewer`, () => gone() || witness.reader.keyframes() >= seen + 2, 10_000);
      t.ok(witness.reader.keyframes() >= seen + 2, `${what}: the watching viewer still gets the relay's keyframes`);
      t.notOk(witness.reader.contains(marker), `${what}: the watching viewer received no injected byte`);
      t.notOk(witness.reader.broken, `${what}: the watching viewer's stream is still FLV`);
      if (gone()) return;
      const fresh = await watchHttpFlv(flvUrl(CHANNEL, token()));
      await until(t, `${what}: a new viewer gets a keyframe`, () => gone() || fresh.reader.keyframes() >= 1, 10_000);
      t.notOk(fresh.reader.contains(marker), `${what}: a viewer joining afterwards got no injected byte (metadata, headers, GOP cache)`);
      fresh.stop();
    },
  };
}
