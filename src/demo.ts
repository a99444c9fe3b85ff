/**
 * Demo mode: the ten municipal agencies of the seed, an administrator and an operator for each
 * (generated passwords, written once to a 0600 file in the data dir — never fixed passwords), the
 * 86,000-channel catalog, and live simulated cameras behind 20 of its channels, a few of them H.265 (as most
 * cameras bought since about 2018 are: issue 10), which a browser without H.265 plays through the H.264 fallback.
 * @see ../shared/DESIGN.md "Numbers the seed gives"
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Channel, ChannelClass, Network } from './core/model.js';
import type { Broker } from './broker.js';
import type { AgencyInput } from './accounts/accounts-service.js';
import { DEMO_SEED, DEMO_TOTAL, demoSimulatedChannels } from './core/demo-catalog.js';
import type { DemoGbDevice } from './gb28181/demo-device.js';

const agency = (id: string, name: string, networks: Network[], classes: ChannelClass[], forwarding: number, analytics: number, canPreempt = false): AgencyInput => ({
  id,
  name,
  networks,
  classes,
  quotas: { forwarding, analytics },
  canPreempt,
});

/**
 * Only public-security-type units (the bureau, traffic police, the political-legal committee that
 * runs the Sharp Eyes programme) see class 1 on the video network; the other sectors see classes 2
 * and 3 over the government and interconnection networks.
 */
export const DEMO_AGENCIES: AgencyInput[] = [
  agency('public-security', '市公安局', ['video', 'police', 'gov', 'interconnect'], [1, 2, 3], 1200, 400, true),
  agency('traffic-police', '市公安局交通警察支队', ['video', 'police', 'interconnect'], [1, 2], 500, 150, true),
  agency('political-legal', '市委政法委', ['video', 'gov', 'interconnect'], [1, 2, 3], 400, 100),
  agency('work-safety', '市应急管理局(安全生产)', ['gov', 'interconnect'], [2, 3], 200, 80, true),
  agency('weather', '市气象局', ['gov', 'interconnect'], [2, 3], 100, 60),
  agency('urban-management', '市城市管理和综合执法局', ['gov', 'interconnect'], [2, 3], 200, 60),
  agency('transport', '市交通运输局', ['gov', 'interconnect'], [2, 3], 200, 60),
  agency('water', '市水务局', ['gov', 'interconnect'], [2, 3], 100, 40),
  agency('ecology', '市生态环境局', ['gov', 'interconnect'], [2, 3], 100, 40),
  agency('education', '市教育局', ['gov'], [2, 3], 100, 20),
];

export const DEMO_CREDENTIALS_FILE = 'demo-credentials.txt';

const generatePassword = () => randomBytes(12).toString('base64url');

export interface DemoSeed {
  credentialsFile: string;
  channels: number;
  /**
   * Channels whose source is a simulated camera: rtmp://127.0.0.1:<port>/cam/<n>, or /cam265/<n> for an H.265
   * one (`codec: 'h265'`; absent in demo data dirs seeded before they existed: all H.264).
   */
  simulated: Array<{ channelId: string; camera: number; codec?: 'h265' }>;
}

/** The last quarter of the simulated cameras send H.265, at most three (each is a libx264 transcode per H.264 viewer's channel). */
export const demoH265Cameras = (cameras: number) => Math.min(3, Math.floor(cameras / 4));

/** The simulator camera behind the i-th (0-based) of `cameras` simulated channels: H.264 ones first, the H.265 ones last. */
export function demoCamera(i: number, cameras: number): { path: string; camera: number; codec?: 'h265' } {
  const h264 = cameras - demoH265Cameras(cameras);
  return i < h264 ? { path: `cam/${i + 1}`, camera: i + 1 } : { path: `cam265/${i - h264 + 1}`, camera: i - h264 + 1, codec: 'h265' };
}

/** Seeds an empty broker. Returns where the generated credentials were written. */
export async function seedDemo(broker: Broker, options: { simulatorRtmpPort: number; cameras: number; total?: number }): Promise<DemoSeed> {
  const admin = broker.accounts.principalOf('admin');
  // The agencies first (at once: concurrent writes share the journal's fsyncs), then their people and the catalog
  // together: every person's scrypt is queued on libuv's threads before this thread starts generating the catalog,
  // so the hashing runs on the other core meanwhile. The credentials file lists them in DEMO_AGENCIES order.
  await Promise.all(DEMO_AGENCIES.map((input) => broker.accounts.createAgency(admin, input)));
  const people = DEMO_AGENCIES.flatMap((input) =>
    (['admin', 'operator'] as const).map((role) => {
      const username = `${input.id.replace(/-/g, '.')}.${role === 'admin' ? 'admin' : 'op'}`.slice(0, 32);
      const password = generatePassword();
      return {
        line: `${username}\t${password}\t${role}\t${input.id}`,
        created: broker.accounts.createUser(admin, input.id, { username, password, role, displayName: `${input.name}${role === 'admin' ? '管理员' : '值班员'}` }),
      };
    }),
  );
  // The catalog is stored as its seed (regenerated at every open) plus the channels the simulator makes live.
  const base = { kind: 'demo' as const, seed: DEMO_SEED, total: options.total ?? DEMO_TOTAL };
  const seeded = broker.catalog.seedBase(base, (catalog) =>
    demoSimulatedChannels(catalog, options.cameras).map((channel, i): Channel => {
      const camera = demoCamera(i, options.cameras);
      return {
        ...channel,
        status: 'online',
        sourceUrl: `rtmp://127.0.0.1:${options.simulatorRtmpPort}/${camera.path}`,
        tags: [...(channel.tags ?? []), 'simulated'],
        // Known by construction, so the console asks for H.264 at the first request already (web/js/codec.js).
        ...(camera.codec && { codec: camera.codec }),
      };
    }),
  );
  const [live] = await Promise.all([seeded, ...people.map((p) => p.created)]);
  // With SIP on, a simulated lower platform registers over GB/T 28181 (src/gb28181/demo-device.ts). Its password
  // stays in the demo's meta document: the simulator is started again at every boot of a demo data dir.
  const gbDevice = broker.gb ? await (await import('./gb28181/demo-device.js')).seedDemoGbDevice(broker.gb, admin) : undefined;
  const lines = ['# Sharp Eyes broker demo accounts (generated; keep this file private)', '# username\tpassword\trole\tagency', ...people.map((p) => p.line)];
  if (gbDevice) lines.push(`# GB/T 28181 lower platform (simulated): device ${gbDevice.id} password ${gbDevice.password}`);
  const credentialsFile = join(broker.config.dataDir, DEMO_CREDENTIALS_FILE);
  await writeFile(credentialsFile, lines.join('\n') + '\n', { mode: 0o600 });

  const simulated = live.map((channel, i) => {
    const { camera, codec } = demoCamera(i, live.length);
    return { channelId: channel.id, camera, ...(codec && { codec }) };
  });
  await broker.store.put('meta', 'demo', { simulated, simulatorRtmpPort: options.simulatorRtmpPort, ...(gbDevice && { gbDevice }) });
  return { credentialsFile, channels: base.total, simulated };
}

export async function demoState(broker: Broker): Promise<{ simulated: DemoSeed['simulated']; simulatorRtmpPort: number; gbDevice?: DemoGbDevice } | undefined> {
  return broker.store.get('meta', 'demo');
}

