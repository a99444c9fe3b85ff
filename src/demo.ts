/**
 * Demo mode: the ten municipal agencies of the seed, an administrator and an operator for each
 * (generated passwords, written once to a 0600 file in the data dir — never fixed passwords), the
 * 86,000-channel catalog, and live simulated cameras behind 20 of its channels.
 * @see ../shared/DESIGN.md "Numbers the seed gives"
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChannelClass, Network } from './core/model.js';
import type { Broker } from './broker.js';
import type { AgencyInput } from './accounts/accounts-service.js';
import { demoSimulatedChannels, generateDemoCatalog } from './core/demo-catalog.js';

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
  /** Channels whose source is a simulated camera: rtmp://127.0.0.1:<port>/cam/<n>. */
  simulated: Array<{ channelId: string; camera: number }>;
}

/** Seeds an empty broker. Returns where the generated credentials were written. */
export async function seedDemo(broker: Broker, options: { simulatorRtmpPort: number; cameras: number; total?: number }): Promise<DemoSeed> {
  const admin = broker.accounts.principalOf('admin');
  const lines = ['# Sharp Eyes broker demo accounts (generated; keep this file private)', '# username\tpassword\trole\tagency'];
  for (const input of DEMO_AGENCIES) {
    await broker.accounts.createAgency(admin, input);
    for (const role of ['admin', 'operator'] as const) {
      const username = `${input.id.replace(/-/g, '.')}.${role === 'admin' ? 'admin' : 'op'}`.slice(0, 32);
      const password = generatePassword();
      await broker.accounts.createUser(admin, input.id, {
        username,
        password,
        role,
        displayName: `${input.name}${role === 'admin' ? '管理员' : '值班员'}`,
      });
      lines.push(`${username}\t${password}\t${role}\t${input.id}`);
    }
  }
  const credentialsFile = join(broker.config.dataDir, DEMO_CREDENTIALS_FILE);
  await writeFile(credentialsFile, lines.join('\n') + '\n', { mode: 0o600 });

  const catalog = generateDemoCatalog({ total: options.total });
  const simulated = demoSimulatedChannels(catalog, options.cameras).map((channel, i) => ({ channelId: channel.id, camera: i + 1 }));
  const byId = new Map(catalog.map((c) => [c.id, c]));
  for (const { channelId, camera } of simulated) {
    const channel = byId.get(channelId)!;
    byId.set(channelId, { ...channel, status: 'online', sourceUrl: `rtmp://127.0.0.1:${options.simulatorRtmpPort}/cam/${camera}`, tags: [...(channel.tags ?? []), 'simulated'] });
  }
  await broker.catalog.seed([...byId.values()]);
  await broker.store.put('meta', 'demo', { simulated, simulatorRtmpPort: options.simulatorRtmpPort });
  return { credentialsFile, channels: byId.size, simulated };
}

export async function demoState(broker: Broker): Promise<{ simulated: DemoSeed['simulated']; simulatorRtmpPort: number } | undefined> {
  return broker.store.get('meta', 'demo');
}

