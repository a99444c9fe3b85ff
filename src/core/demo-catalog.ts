/**
 * The demo catalog: a deterministic, plausible Guangzhou camera catalog following the seed's numbers
 * (../../../shared/DESIGN.md "Numbers the seed gives"): 86,000 channels, of which 9,000 class-2/3 points reached
 * through the government and interconnection networks, the rest class-1 points on the video private network.
 * Sources point at `camera.invalid` (RFC 2606), so nothing is ever contacted.
 */
import { GUANGZHOU_DISTRICTS, GUANGZHOU_DISTRICT_BY_CODE, type DistrictInfo } from './gb-code.js';
import type { Channel, ChannelClass, ChannelStatus } from './model.js';

export const DEMO_TOTAL = 86_000;
export const DEMO_SHARED_CLASS_2_3 = 9_000;
export const DEMO_SEED = 28181;

/** Seeded PRNG (mulberry32): tiny, fast and the same on every machine. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Share of the channels per district (roughly population and built-up area). Sums to 1. */
const DISTRICT_WEIGHTS: Record<string, number> = {
  '440103': 0.07, '440104': 0.08, '440105': 0.10, '440106': 0.12, '440111': 0.16, '440112': 0.08,
  '440113': 0.14, '440114': 0.08, '440115': 0.06, '440117': 0.04, '440118': 0.07,
};

const ROADS: Record<string, readonly string[]> = {
  '440103': ['中山七路', '中山八路', '黄沙大道', '芳村大道', '龙津西路', '康王路', '东风西路', '花地大道', '多宝路', '西华路'],
  '440104': ['北京路', '中山五路', '东风中路', '环市东路', '解放北路', '农林下路', '越秀北路', '人民北路', '流花路', '文德路'],
  '440105': ['江南大道', '工业大道', '新港西路', '新港东路', '昌岗路', '宝岗大道', '琶洲大道', '南洲路', '滨江东路', '东晓路'],
  '440106': ['天河路', '体育东路', '体育西路', '天河北路', '黄埔大道西', '花城大道', '中山大道西', '林和西路', '冼村路', '科韵路', '车陂路'],
  '440111': ['白云大道', '机场路', '广园中路', '同和路', '三元里大道', '增槎路', '黄石东路', '云城东路', '石井大道', '沙太路', '京溪路'],
  '440112': ['黄埔东路', '开创大道', '科学大道', '香雪大道', '开发大道', '大沙地东路', '丰乐北路', '护林路', '瑞祥路'],
  '440113': ['迎宾路', '市桥大道', '汉溪大道', '南村大道', '兴南大道', '番禺大道', '亚运大道', '福愉东路', '清河路', '东环路'],
  '440114': ['迎宾大道', '新华路', '凤凰北路', '云山大道', '建设北路', '商业大道', '天贵路', '花城路'],
  '440115': ['进港大道', '港前大道', '凤凰大道', '环市大道', '黄阁大道', '金隆路', '蕉门路', '海滨路'],
  '440117': ['河滨北路', '街口大道', '新城中路', '从城大道', '温泉大道', '广从南路', '青云路'],
  '440118': ['荔城大道', '增城大道', '府佑路', '新塘大道', '荔景大道', '创优大道', '东江大道'],
};
const LANDMARKS = ['地铁站', '公交总站', '广场', '公园', '人民医院', '购物中心', '农贸市场', '社区服务中心', '体育中心', '客运站'];
const DIRECTIONS = ['东', '南', '西', '北', '东北', '西南'];
const ENTRANCES = ['出入口', '正门', '东门', '西门', '停车场入口'];

/**
 * Industry codes (digits 9-10) of GB/T 28181-2016 Annex D: 00-03 social security (road, community, internal,
 * other), 04 traffic road surface, 07 traffic other, 08 city management, 09 health and environment, 11 education,
 * 42 manufacturing, 44 power, 45 gas, 46 construction, 54 water conservancy.
 * Class 1 points are public-security points (00-04); class 2 are government sectors; class 3 social resources.
 */
interface Sector {
  industry: string;
  ownerAgency?: string;
  tag: string;
  names: readonly string[];
  weight: number;
}
const CLASS_1_SECTORS: readonly Sector[] = [
  { industry: '00', tag: '路面', names: ['{cross}'], weight: 55 },
  { industry: '01', tag: '社区', names: ['{road}{n}号社区{gate}'], weight: 20 },
  { industry: '02', tag: '内部', names: ['{road}派出所{gate}'], weight: 5 },
  { industry: '03', tag: '公共区域', names: ['{road}{landmark}{gate}'], weight: 10 },
  { industry: '04', tag: '交通', names: ['{cross}', '{road}{n}号路段-{dir}向'], weight: 10 },
];
const CLASS_2_SECTORS: readonly Sector[] = [
  { industry: '08', ownerAgency: 'urban-management', tag: '城管', names: ['{road}{n}号市容巡查点', '{road}{landmark}周边'], weight: 35 },
  { industry: '09', ownerAgency: 'eco-environment', tag: '环保', names: ['{road}污水处理厂排口', '{road}垃圾压缩站'], weight: 20 },
  { industry: '11', ownerAgency: 'education', tag: '教育', names: ['{road}小学{gate}', '{road}中学{gate}', '{road}幼儿园{gate}'], weight: 30 },
  { industry: '07', ownerAgency: 'transport', tag: '交通', names: ['{road}公交站台-{dir}向', '{road}{landmark}接驳站'], weight: 15 },
];
const CLASS_3_SECTORS: readonly Sector[] = [
  { industry: '46', ownerAgency: 'housing-construction', tag: '工地', names: ['{road}{n}号建筑工地塔吊', '{road}{n}号工地大门'], weight: 35 },
  { industry: '42', ownerAgency: 'work-safety', tag: '企业', names: ['{road}{n}号厂区{gate}', '{road}{n}号仓库'], weight: 25 },
  { industry: '45', ownerAgency: 'work-safety', tag: '燃气', names: ['{road}燃气调压站', '{road}加气站'], weight: 15 },
  { industry: '44', ownerAgency: 'work-safety', tag: '电力', names: ['{road}变电站'], weight: 10 },
  { industry: '54', ownerAgency: 'water-affairs', tag: '水务', names: ['{road}水闸', '{road}排涝泵站'], weight: 15 },
];

export interface DemoCatalogOptions {
  total?: number;
  seed?: number;
}

type Slot = 'cross' | 'road' | 'n' | 'landmark' | 'gate' | 'dir';
/** A name template as its literal parts and slots: even indexes literal text, odd ones a slot. */
type Template = ReadonlyArray<string>;
const SLOT = /^\{(cross|road|n|landmark|gate|dir)\}$/;

function compileTemplate(template: string): Template {
  const parts = template.split(/(\{(?:cross|road|n|landmark|gate|dir)\})/).map((p, i) => (i % 2 === 1 ? SLOT.exec(p)![1]! : p));
  if (new Set(parts.filter((_, i) => i % 2 === 1)).size !== Math.floor(parts.length / 2)) throw new Error(`template ${template} repeats a slot`);
  return parts;
}

interface CompiledSector extends Sector {
  templates: readonly Template[];
  /** One tags array per sector, shared (the index freezes it): 86,000 one-element arrays are megabytes. */
  tags: string[];
}
const compileSectors = (sectors: readonly Sector[]): CompiledSector[] =>
  sectors.map((sector) => ({ ...sector, templates: sector.names.map(compileTemplate), tags: [sector.tag] }));

/** The demo catalog, sorted by id. The same options always give the same channels. */
export function generateDemoCatalog(options: DemoCatalogOptions = {}): Channel[] {
  const total = options.total ?? DEMO_TOTAL;
  const random = mulberry32(options.seed ?? DEMO_SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const weighted = <T extends { weight: number }>(items: readonly T[], sum: number): T => {
    let r = random() * sum;
    for (const item of items) if ((r -= item.weight) < 0) return item;
    return items[items.length - 1];
  };
  const weightOf = (items: ReadonlyArray<{ weight: number }>) => items.reduce((sum, item) => sum + item.weight, 0);

  const shared = Math.round((total * DEMO_SHARED_CLASS_2_3) / DEMO_TOTAL);
  const class2 = Math.round((shared * 5) / 9);
  const districts = GUANGZHOU_DISTRICTS.map((d) => ({ ...d, weight: DISTRICT_WEIGHTS[d.code], roads: ROADS[d.code], serial: 0 }));
  const districtWeight = weightOf(districts);
  // Sectors (and their name templates) per class, compiled once.
  const sectorsOf = [CLASS_1_SECTORS, CLASS_2_SECTORS, CLASS_3_SECTORS].map(compileSectors);
  const sectorWeights = sectorsOf.map(weightOf);
  const channels = new Array<Channel>(total);
  // The id's two 10-digit halves as numbers: the same order as comparing the 20-digit strings, far cheaper.
  const parts: Array<string | number> = [];
  const high = new Float64Array(total);
  const low = new Float64Array(total);
  for (let i = 0; i < total; i++) {
    const channelClass: ChannelClass = i < class2 ? 2 : i < shared ? 3 : 1;
    const district = weighted(districts, districtWeight);
    const sector = weighted(sectorsOf[channelClass - 1]!, sectorWeights[channelClass - 1]!);
    // Class 2 mostly sits on the government network, class 3 mostly on the interconnect; class 1 on the video
    // private network, where most platforms use digit 1.
    const networkDigit =
      channelClass === 1 ? pick([0, 1, 1, 1, 1, 2, 3, 4]) : random() < (channelClass === 2 ? 0.8 : 0.3) ? 6 : 8;
    const serial = ++district.serial;
    const grassroots = 1 + Math.floor(random() * 30);
    const type = random() < 0.7 ? 132 : 131;
    high[i] = Number(district.code) * 10_000 + grassroots * 100 + Number(sector.industry);
    low[i] = type * 10_000_000 + networkDigit * 1_000_000 + serial;
    // Strings are built with join, not `+`: V8 makes a long `a + b` a rope (a node per `+`, kept for the string's
    // life), and 86,000 channels of rope ids and names are ~10 MB more heap than the same flat strings.
    const id = [district.code, grassroots < 10 ? '0' : '', grassroots, sector.industry, type, networkDigit, String(serial).padStart(6, '0')].join('');
    const roads = district.roads;
    const road = pick(roads);
    let cross = pick(roads);
    if (cross === road) cross = roads[(roads.indexOf(road) + 1) % roads.length];
    // Every draw is made whether or not the template uses it, in this order: the catalog stays the same. Only the
    // strings a template does not use are not built (86,000 channels' worth of garbage at every start).
    const template = pick(sector.templates);
    const crossDir = pick(DIRECTIONS);
    const n = 1 + Math.floor(random() * 399);
    const landmark = pick(LANDMARKS);
    const gate = pick(ENTRANCES);
    const dir = pick(DIRECTIONS);
    parts.length = 0;
    for (let p = 0; p < template.length; p++) {
      if (p % 2 === 0) {
        if (template[p] !== '') parts.push(template[p]);
        continue;
      }
      switch (template[p] as Slot) {
        case 'cross':
          parts.push(road, '与', cross, '交叉口-', crossDir, '向');
          break;
        case 'road':
          parts.push(road);
          break;
        case 'n':
          parts.push(n);
          break;
        case 'landmark':
          parts.push(landmark);
          break;
        case 'gate':
          parts.push(gate);
          break;
        case 'dir':
          parts.push(dir);
          break;
      }
    }
    const name = parts.join('');
    const r = random();
    const status: ChannelStatus = r < 0.95 ? 'online' : r < 0.985 ? 'offline' : 'fault';
    const channel: Channel = {
      id,
      name,
      class: channelClass,
      district: district.code,
      network: networkDigit <= 4 ? 'video' : networkDigit === 6 ? 'gov' : 'interconnect',
      location: pointIn(district, random),
      status,
      tags: sector.tags,
      // Here a rope is the smaller: one node over the shared prefix and the id the channel holds anyway.
      sourceUrl: `rtsp://camera.invalid/${id}`,
    };
    if (sector.ownerAgency) channel.ownerAgency = sector.ownerAgency;
    channels[i] = channel;
  }
  const order = new Uint32Array(total);
  for (let i = 0; i < total; i++) order[i] = i;
  order.sort((a, b) => high[a]! - high[b]! || low[a]! - low[b]!);
  const sorted = new Array<Channel>(total);
  for (let i = 0; i < total; i++) sorted[i] = channels[order[i]!]!;
  return sorted;
}

/** A point inside the district's box, denser towards its centre (cameras cluster where people are). */
function pointIn(district: DistrictInfo, random: () => number): { lat: number; lon: number } {
  const [minLon, minLat, maxLon, maxLat] = district.bbox;
  for (let attempt = 0; attempt < 8; attempt++) {
    // Box-Muller normal deviates, spread a quarter of the box.
    const radius = Math.sqrt(-2 * Math.log(1 - random()));
    const angle = 2 * Math.PI * random();
    const lat = district.centre.lat + radius * Math.cos(angle) * ((maxLat - minLat) / 4);
    const lon = district.centre.lon + radius * Math.sin(angle) * ((maxLon - minLon) / 4);
    if (lat >= minLat && lat <= maxLat && lon >= minLon && lon <= maxLon) return { lat: round6(lat), lon: round6(lon) };
  }
  return { lat: round6(minLat + random() * (maxLat - minLat)), lon: round6(minLon + random() * (maxLon - minLon)) };
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * The channels the demo's camera simulator makes live: `count` online channels spread over the districts
 * (round-robin), every fourth one a class-2/3 point so agencies of both kinds have something to watch.
 */
export function demoSimulatedChannels(catalog: readonly Channel[], count = 20): Channel[] {
  const byDistrict = new Map<string, { class1: Channel[]; shared: Channel[] }>();
  for (const channel of catalog) {
    if (channel.status !== 'online' || !GUANGZHOU_DISTRICT_BY_CODE.has(channel.district)) continue;
    let groups = byDistrict.get(channel.district);
    if (!groups) byDistrict.set(channel.district, (groups = { class1: [], shared: [] }));
    (channel.class === 1 ? groups.class1 : groups.shared).push(channel);
  }
  const districts = GUANGZHOU_DISTRICTS.map((d) => d.code).filter((code) => byDistrict.has(code));
  const chosen: Channel[] = [];
  const taken = new Set<string>();
  for (let i = 0; chosen.length < count && i < count * 4 && districts.length > 0; i++) {
    const groups = byDistrict.get(districts[i % districts.length])!;
    const preferred = i % 4 === 3 ? groups.shared : groups.class1;
    const group = preferred.length > 0 ? preferred : i % 4 === 3 ? groups.class1 : groups.shared;
    if (group.length === 0) continue;
    // Golden-ratio stepping spreads the picks over the district's id range (and so over its grassroots units).
    let at = Math.floor(group.length * (((i + 1) * 0.6180339887) % 1));
    for (let tries = 0; tries < group.length && taken.has(group[at].id); tries++) at = (at + 1) % group.length;
    if (taken.has(group[at].id)) continue;
    taken.add(group[at].id);
    chosen.push(group[at]);
  }
  return chosen;
}
