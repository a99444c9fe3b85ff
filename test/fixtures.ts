/** Small hand-made catalogs for tests: ids valid per GB/T 28181, one of each kind that matters. */
import type { Channel, ChannelClass, Network } from '../src/core/model.js';

const NETWORK_DIGIT: Record<Network, string> = { video: '0', police: '5', gov: '6', interconnect: '8' };

/** 440106 (天河) + grassroots 00 + industry + device type 131 + network digit + 6-digit serial. */
export function channelId(serial: number, network: Network = 'video', district = '440106', industry = '00'): string {
  return `${district}00${industry}131${NETWORK_DIGIT[network]}${String(serial).padStart(6, '0')}`;
}

export function makeChannel(serial: number, cls: ChannelClass, network: Network, extra: Partial<Channel> = {}): Channel {
  const district = extra.district ?? '440106';
  return {
    id: channelId(serial, network, district, cls === 1 ? '00' : '06'),
    name: `测试点位${serial}`,
    class: cls,
    district,
    network,
    location: { lat: 23.13 + serial * 0.0001, lon: 113.33 + serial * 0.0001 },
    status: 'online',
    sourceUrl: `rtsp://camera.invalid/${serial}`,
    ...extra,
  };
}

/** `n` online channels of each (class, network) pair that the seed uses. */
export function mixedCatalog(n = 5): Channel[] {
  const out: Channel[] = [];
  let serial = 1;
  for (const [cls, network] of [[1, 'video'], [2, 'gov'], [3, 'interconnect'], [1, 'police']] as Array<[ChannelClass, Network]>) {
    for (let i = 0; i < n; i++) out.push(makeChannel(serial++, cls, network));
  }
  return out;
}
