/**
 * The device registry under writers that interleave: an unregister being written while a catalog answer
 * writes the device's counts. Seen once in the SIPp test as a device read online after `Expires: 0`: the
 * registry showed a write only once it was durable, so the second writer built on the record from before
 * the unregister and put `online: true` back. On the real memory store (an fsync'd journal) and on Redis.
 */
import t, { type Test } from 'tap';
import { GbDeviceRegistry, type GbDevice } from '../../src/gb28181/gb-devices.js';
import { MemoryDocumentStore } from '../../src/store/memory/document-store.js';
import type { AccessControl, DocumentStore } from '../../src/core/ports.js';
import type { AuditService } from '../../src/core/audit-service.js';
import { RedisDocumentStore } from '../../src/store/redis/document-store.js';
import { connectTestRedis, testPrefix } from '../store/redis/harness.js';
import { makeTempDir } from '../helper.js';

const DEVICE = '44010600002000000009';
const online: GbDevice = {
  id: DEVICE, name: 'district platform', channelClass: 2, mediaTransport: 'udp', disabled: false, online: true,
  address: '127.0.0.1:5070', transport: 'udp', registeredAt: '2026-12-02T00:00:00.000Z', lastKeepaliveAt: '2026-12-02T00:00:00.000Z',
  channels: 0, skippedItems: 0, createdAt: '2026-12-01T00:00:00.000Z', createdBy: 'u-admin', ha1: '0'.repeat(32), realm: '4401000000',
  expiresAt: Date.now() + 3_600_000, brokerId: 'broker-a', peer: { transport: 'udp', address: '127.0.0.1', port: 5070 },
} as GbDevice;

// Neither is used by save/get: the registry's API methods (which authorize and audit) are not under test here.
const access = {} as AccessControl;
const audit = {} as AuditService;

async function interleave(t: Test, store: DocumentStore, reopen: () => Promise<DocumentStore>) {
  const registry = await GbDeviceRegistry.open(store, access, audit, '4401000000');
  await registry.save(online);
  // The unregister: its write is on its way, not yet durable.
  const unregistering = registry.save({ ...registry.get(DEVICE)!, online: false, expiresAt: null, brokerId: null, peer: null });
  t.equal(registry.get(DEVICE)!.online, false, 'the registry shows the unregister while it is being written');
  // The catalog answer's counts, built on the record as the registry shows it now.
  const counting = registry.save({ ...registry.get(DEVICE)!, channels: 4 });
  await Promise.all([unregistering, counting]);
  t.match(registry.get(DEVICE), { online: false, channels: 4 }, 'both writes hold: offline, with its channels counted');
  const again = await GbDeviceRegistry.open(await reopen(), access, audit, '4401000000');
  t.match(again.get(DEVICE), { online: false, channels: 4 }, 'and so does the stored record');
}

t.test('memory store: an unregister and a catalog count written together both hold', async (t) => {
  const dir = await makeTempDir(t);
  const store = await MemoryDocumentStore.open(dir);
  let second: MemoryDocumentStore | undefined;
  t.teardown(async () => {
    await store.close();
    await second?.close();
  });
  await interleave(t, store, async () => {
    await store.close();
    second = await MemoryDocumentStore.open(dir);
    return second;
  });
});

t.test('redis store: an unregister and a catalog count written together both hold', async (t) => {
  const client = await connectTestRedis();
  const prefix = testPrefix(t);
  const stores: RedisDocumentStore[] = [];
  const open = async () => {
    const store = await RedisDocumentStore.open(client, { prefix });
    stores.push(store);
    return store;
  };
  t.teardown(async () => {
    for (const store of stores) await store.close();
    await client.close();
  });
  await interleave(t, await open(), open);
});

t.test('a write that fails leaves the registry as it was', async (t) => {
  const dir = await makeTempDir(t);
  const memory = await MemoryDocumentStore.open(dir);
  t.teardown(() => memory.close());
  let fail = false;
  const store: DocumentStore = Object.assign(Object.create(memory) as DocumentStore, {
    put: async (...args: Parameters<DocumentStore['put']>) => {
      if (fail) throw new Error('disk full');
      return memory.put(...args);
    },
  });
  const registry = await GbDeviceRegistry.open(store, access, audit, '4401000000');
  await registry.save(online);
  fail = true;
  await t.rejects(registry.save({ ...online, online: false }), /disk full/);
  t.equal(registry.get(DEVICE)!.online, true, 'the failed write is not shown');
});
