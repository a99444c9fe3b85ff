/**
 * The broker against an independent SIP implementation: SIPp (Debian `sip-tester`) runs the scenarios of
 * test/gb28181/sipp/ as a real process over UDP and TCP: REGISTER with digest (challenge, success, wrong
 * password, Expires: 0), Keepalive, an unknown device, and a lower platform answering the Catalog query
 * over two MESSAGEs and the SUBSCRIBE. The device password is a random one of this test, given with -ap:
 * SIPp 3.6 does not expand injected fields inside [authentication].
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { cp, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { auth, makeTempDir, until } from '../helper.js';
import { buildGbBroker, freeSipPort, SERVER_ID, type GbTestBroker } from './helpers.js';

const scenarios = fileURLToPath(new URL('./sipp/', import.meta.url));

async function runSipp(t: Test, tb: GbTestBroker, input: { scenario: string; deviceId: string; password: string; transport: 'udp' | 'tcp'; ooc?: string }) {
  const dir = await makeTempDir(t, 'se-sipp-');
  const localPort = await freeSipPort();
  const args = [
    `127.0.0.1:${tb.sipPort}`,
    '-sf', join(scenarios, input.scenario),
    ...(input.ooc ? ['-oocsf', join(scenarios, input.ooc)] : []),
    '-au', input.deviceId,
    '-ap', input.password,
    '-s', input.deviceId,
    '-key', 'server', SERVER_ID,
    '-key', 'domain', SERVER_ID.slice(0, 10),
    '-t', input.transport === 'udp' ? 'u1' : 't1',
    '-i', '127.0.0.1', '-p', String(localPort),
    '-m', '1', '-nostdin', '-timeout', '40s', '-timeout_error', '-trace_err', ...(process.env.SIPP_TRACE ? ['-trace_msg'] : []),
  ];
  const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  if (process.env.SIPP_TRACE) await cp(dir, `${process.env.SIPP_TRACE}/${input.scenario}-${input.transport}`, { recursive: true });
  if (code !== 0) {
    // What SIPp found unexpected, for the failure message.
    for (const file of await readdir(dir)) if (file.endsWith('.log')) output += `\n--- ${file}\n${(await readFile(join(dir, file), 'utf8')).slice(-3000)}`;
  }
  return { code, output: output.slice(-6000) };
}


const audit = async (tb: GbTestBroker, deviceId: string) => {
  const res = await tb.app.inject({ method: 'GET', url: '/api/v1/audit?limit=200', headers: auth(tb.adminToken) });
  return (res.json().items as Array<{ action: string; target: string; reason?: string }>).filter((e) => e.target === `gb-device:${deviceId}`);
};

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`SIPp over ${transport}: digest challenge, success, keepalive, Expires: 0`, async (t) => {
    const tb = await buildGbBroker(t);
    const { id, password } = await tb.device();
    const run = await runSipp(t, tb, { scenario: 'register.xml', deviceId: id, password, transport, ooc: 'catalog-ooc.xml' });
    t.equal(run.code, 0, `sipp succeeded\n${run.output}`);
    const actions = (await audit(tb, id)).map((e) => e.action);
    t.ok(actions.includes('gb.register'), 'the registration is audited');
    t.ok(actions.includes('gb.unregister'), 'Expires: 0 unregistered it');
    // The record settles once the unregister's writes (device, channels, dialogs) are through; it must settle offline.
    const read = async () => (await tb.app.inject({ method: 'GET', url: `/api/v1/gb/devices/${id}`, headers: auth(tb.adminToken) })).json();
    await until(t, 'the device reads offline after Expires: 0', async () => (await read()).online === false, 10_000);
    t.type((await read()).lastKeepaliveAt, 'string');
  });
}

t.test('SIPp: a wrong password gets 401 with a fresh challenge; an unknown device 403', async (t) => {
  const tb = await buildGbBroker(t);
  const { id } = await tb.device();
  const wrong = await runSipp(t, tb, { scenario: 'register-wrong-password.xml', deviceId: id, password: 'not-the-password', transport: 'udp' });
  t.equal(wrong.code, 0, `401 after the wrong digest\n${wrong.output}`);
  t.ok((await audit(tb, id)).some((e) => e.action === 'gb.register.denied' && e.reason === 'wrong credentials'));
  const unknown = await runSipp(t, tb, { scenario: 'register-unknown.xml', deviceId: '44010600001180009999', password: 'whatever-1', transport: 'udp' });
  t.equal(unknown.code, 0, `403 for an unknown device\n${unknown.output}`);
});

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`SIPp over ${transport} as a lower platform: its Catalog answer over two MESSAGEs lands in the catalog`, async (t) => {
    const tb = await buildGbBroker(t);
    const { id, password } = await tb.device({ channelClass: 2 });
    const running = runSipp(t, tb, { scenario: 'catalog.xml', deviceId: id, password, transport, ooc: 'catalog-ooc.xml' });
    const channel = (n: string) => tb.broker.catalog.channel(`4401060000131000000${n}`);
    await until(t, 'both cameras in the catalog', () => channel('1') !== undefined && channel('2') !== undefined, 30_000);
    t.match(channel('1'), { name: 'SIPp 天河北路口', status: 'online', class: 2, source: 'gb28181', deviceId: id, location: { lat: 23.14, lon: 113.33 }, district: '440106', network: 'video' });
    t.match(channel('2'), { name: 'SIPp 体育西路', status: 'offline' });
    await until(t, 'the device record counts them, and the skipped group', () => {
      const device = tb.broker.gb!.read(tb.broker.accounts.authenticate(`Bearer ${tb.adminToken}`)!, id);
      return device.channels === 2 && device.skippedItems === 1;
    });
    await until(t, 'the catalog subscription taken', () => tb.broker.gb!.catalogSync.subscribed(id), 20_000);
    const run = await running;
    t.equal(run.code, 0, `sipp succeeded\n${run.output}`);
    const search = await tb.app.inject({ method: 'GET', url: `/api/v1/channels?q=${encodeURIComponent('天河北')}`, headers: auth(tb.adminToken) });
    t.equal(search.json().items[0]?.source, 'gb28181', 'found by name in search, marked gb28181');
  });
}
