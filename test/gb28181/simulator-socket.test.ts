/**
 * Many simulated devices on one UDP socket (what lets bench gb-devices run thousands in one process): each
 * registers and keepalives on its own, the broker's Catalog queries reach the device they are for, and a
 * device that leaves the socket no longer answers while the others still do.
 */
import t from 'tap';
import { auth, until } from '../helper.js';
import { buildGbBroker } from './helpers.js';
import { SimulatorSocket } from '../../src/gb28181/simulator-socket.js';
import { simulatedCatalog } from '../../src/gb28181/device-simulator.js';

t.test('devices sharing one socket register, keepalive and answer their own catalog queries', async (t) => {
  const tb = await buildGbBroker(t);
  const socket = await SimulatorSocket.open();
  t.teardown(() => socket.close());
  const [a, b] = [await tb.device(), await tb.device()];
  // Distinct channel ids per device (simulatedCatalog derives them from digits 7-10 of the device id, the same here).
  const channelsOf = (id: string, serialBase: number) =>
    simulatedCatalog(id, 2).map((item, i) => ({ ...item, deviceId: `${item.deviceId.slice(0, 14)}${String(serialBase + i).padStart(6, '0')}` }));
  const simA = await tb.simulator({ deviceId: a.id, password: a.password, socket, channels: channelsOf(a.id, 100) });
  const simB = await tb.simulator({ deviceId: b.id, password: b.password, socket, channels: channelsOf(b.id, 200) });
  t.equal(socket.devices, 6, 'two devices and their four channels are routed through the socket');

  const read = async (id: string) => (await tb.app.inject({ url: `/api/v1/gb/devices/${id}`, headers: auth(tb.adminToken) })).json();
  await until(t, 'both catalogs synced', async () => (await read(a.id)).channels === 2 && (await read(b.id)).channels === 2);
  const [deviceA, deviceB] = [await read(a.id), await read(b.id)];
  t.equal(deviceA.online && deviceB.online, true, 'both online');
  t.equal(deviceA.address, deviceB.address, 'from the same address and port');
  t.equal(deviceA.channelsOnline, 2, 'the API counts the online channels');
  t.equal(await simA.keepalive(), 200, 'A keepalives');
  t.equal(await simB.keepalive(), 200, 'B keepalives');

  const [queriesA, queriesB] = [simA.seen.catalogQueries, simB.seen.catalogQueries];
  const requery = await tb.app.inject({ method: 'POST', url: `/api/v1/gb/devices/${b.id}/catalog`, headers: auth(tb.adminToken) });
  t.equal(requery.statusCode, 202);
  await until(t, 'B got the query', () => simB.seen.catalogQueries > queriesB);
  t.equal(simA.seen.catalogQueries, queriesA, 'A did not get B\'s query');

  await simA.close();
  t.equal(socket.devices, 3, 'A left the socket, B stays');
  t.equal(await simB.keepalive(), 200, 'B still keepalives over the shared socket');
});
