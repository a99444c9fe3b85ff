/**
 * MANSCDP (GB/T 28181-2016 Annex A): the XML bodies of MESSAGE and NOTIFY. Bodies arrive in GB2312 (the
 * standard's encoding) or UTF-8; the declared encoding decides, and a body that is not valid UTF-8 is
 * read as GB18030 (a superset of GB2312 and GBK). The XML reader is small and bounded (depth, elements,
 * text size): the documents are flat records, and nothing a device sends may grow without limit.
 * @see GB/T 28181-2016 附录 A (MANSCDP 命令集)
 */
import iconv from 'iconv-lite';

export const MANSCDP_CONTENT_TYPE = 'Application/MANSCDP+xml';

const MAX_DEPTH = 16;
const MAX_ELEMENTS = 50_000;

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

export class XmlError extends Error {
  override name = 'XmlError';
}

export type BodyEncoding = 'gb2312' | 'utf-8';

/** Decodes a MANSCDP body: the XML declaration's encoding, else the Content-Type charset, else UTF-8 if it is valid. */
export function decodeBody(body: Buffer, contentType?: string): { text: string; encoding: BodyEncoding } {
  const head = body.subarray(0, 200).toString('latin1');
  const declared = /encoding\s*=\s*["']([A-Za-z0-9_-]+)["']/i.exec(head)?.[1] ?? /charset\s*=\s*"?([A-Za-z0-9_-]+)/i.exec(contentType ?? '')?.[1];
  const gb = declared !== undefined && /^(gb2312|gbk|gb18030|cp936)$/i.test(declared);
  if (!gb && isUtf8(body)) return { text: body.toString('utf8'), encoding: 'utf-8' };
  return { text: iconv.decode(body, 'gb18030'), encoding: 'gb2312' };
}

export function encodeBody(xml: string, encoding: BodyEncoding): Buffer {
  return encoding === 'utf-8' ? Buffer.from(xml, 'utf8') : iconv.encode(xml, 'gb18030');
}

function isUtf8(buf: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}

const ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (whole, ref: string) => {
    if (ref.startsWith('#')) {
      const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '';
    }
    return ENTITIES[ref] ?? whole;
  });
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&${({ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' } as Record<string, string>)[c]};`);
}

/** Parses a document into its root element. Throws XmlError on anything malformed or past the bounds. */
export function parseXml(text: string): XmlElement {
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (chunk.trim()) {
      const top = stack[stack.length - 1];
      if (!top) throw new XmlError('text outside the root element');
      top.text += decodeEntities(chunk);
    }
    if (lt < 0) break;
    if (text.startsWith('<?', lt)) {
      const end = text.indexOf('?>', lt);
      if (end < 0) throw new XmlError('unterminated declaration');
      i = end + 2;
    } else if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt);
      if (end < 0) throw new XmlError('unterminated comment');
      i = end + 3;
    } else if (text.startsWith('<![CDATA[', lt)) {
      const end = text.indexOf(']]>', lt);
      const top = stack[stack.length - 1];
      if (end < 0 || !top) throw new XmlError('bad CDATA section');
      top.text += text.slice(lt + 9, end);
      i = end + 3;
    } else if (text.startsWith('<!', lt)) {
      throw new XmlError('DOCTYPE and other declarations are not accepted');
    } else if (text[lt + 1] === '/') {
      const end = text.indexOf('>', lt);
      if (end < 0) throw new XmlError('unterminated end tag');
      const name = text.slice(lt + 2, end).trim();
      const top = stack.pop();
      if (!top || top.name !== name) throw new XmlError(`end tag </${name}> does not close the open element`);
      i = end + 1;
    } else {
      const end = text.indexOf('>', lt);
      if (end < 0) throw new XmlError('unterminated tag');
      let inner = text.slice(lt + 1, end);
      const selfClosing = inner.endsWith('/');
      if (selfClosing) inner = inner.slice(0, -1);
      const nameMatch = /^([A-Za-z_][A-Za-z0-9_.:-]*)/.exec(inner);
      if (!nameMatch) throw new XmlError('bad tag name');
      const element: XmlElement = { name: nameMatch[1]!, attributes: {}, children: [], text: '' };
      const attrs = inner.slice(nameMatch[1]!.length);
      for (const m of attrs.matchAll(/([A-Za-z_][A-Za-z0-9_.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
        element.attributes[m[1]!] = decodeEntities(m[3] ?? m[4] ?? '');
      }
      if (++elements > MAX_ELEMENTS) throw new XmlError(`more than ${MAX_ELEMENTS} elements`);
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(element);
      else if (root) throw new XmlError('more than one root element');
      else root = element;
      if (!selfClosing) {
        stack.push(element);
        if (stack.length > MAX_DEPTH) throw new XmlError(`nested deeper than ${MAX_DEPTH}`);
      }
      i = end + 1;
    }
  }
  if (!root) throw new XmlError('no root element');
  if (stack.length > 0) throw new XmlError(`element <${stack[stack.length - 1]!.name}> is not closed`);
  return root;
}

export const child = (element: XmlElement, name: string) => element.children.find((c) => c.name === name);
export const childText = (element: XmlElement, name: string) => child(element, name)?.text.trim();

// ---------------------------------------------------------------------------------------------
// The commands this broker and its simulator exchange.
// ---------------------------------------------------------------------------------------------

export interface ManscdpDocument {
  /** Query, Response, Notify, Control. */
  root: string;
  cmdType: string;
  sn: number;
  deviceId: string;
  element: XmlElement;
}

/** Reads the common head of a MANSCDP document; undefined when it is not one. */
export function readManscdp(body: Buffer, contentType?: string): ManscdpDocument | undefined {
  let element: XmlElement;
  try {
    element = parseXml(decodeBody(body, contentType).text);
  } catch {
    return undefined;
  }
  const cmdType = childText(element, 'CmdType');
  const sn = Number(childText(element, 'SN'));
  const deviceId = childText(element, 'DeviceID') ?? '';
  if (!cmdType || !Number.isInteger(sn) || sn < 0) return undefined;
  return { root: element.name, cmdType, sn, deviceId, element };
}

export type CatalogEvent = 'ADD' | 'UPDATE' | 'DEL' | 'ON' | 'OFF' | 'VLOST' | 'DEFECT';
export const CATALOG_EVENTS: readonly CatalogEvent[] = ['ADD', 'UPDATE', 'DEL', 'ON', 'OFF', 'VLOST', 'DEFECT'];

export interface CatalogItem {
  deviceId: string;
  name?: string;
  status?: string;
  longitude?: number;
  latitude?: number;
  civilCode?: string;
  parentId?: string;
  event?: CatalogEvent;
}

/** Items of a Catalog Response or Notify, with the sum the device says it will send in all. */
export function readCatalogItems(doc: ManscdpDocument): { sumNum: number; items: CatalogItem[] } {
  const sumNum = Number(childText(doc.element, 'SumNum') ?? '0');
  const list = child(doc.element, 'DeviceList');
  const items: CatalogItem[] = [];
  for (const item of list?.children ?? []) {
    if (item.name !== 'Item') continue;
    const deviceId = childText(item, 'DeviceID') ?? '';
    const number = (name: string) => {
      const text = childText(item, name);
      const value = text === undefined || text === '' ? NaN : Number(text);
      return Number.isFinite(value) ? value : undefined;
    };
    const event = childText(item, 'Event')?.toUpperCase();
    items.push({
      deviceId,
      name: childText(item, 'Name'),
      status: childText(item, 'Status')?.toUpperCase(),
      longitude: number('Longitude'),
      latitude: number('Latitude'),
      civilCode: childText(item, 'CivilCode'),
      parentId: childText(item, 'ParentID'),
      event: (CATALOG_EVENTS as readonly string[]).includes(event ?? '') ? (event as CatalogEvent) : undefined,
    });
  }
  return { sumNum: Number.isInteger(sumNum) && sumNum >= 0 ? sumNum : 0, items };
}

function document(root: string, fields: ReadonlyArray<readonly [string, string | number]>, inner = ''): string {
  const lines = [`<?xml version="1.0" encoding="GB2312"?>`, `<${root}>`];
  for (const [name, value] of fields) lines.push(`<${name}>${escapeXml(String(value))}</${name}>`);
  if (inner) lines.push(inner);
  lines.push(`</${root}>`, '');
  return lines.join('\r\n');
}

export const catalogQuery = (sn: number, deviceId: string) =>
  document('Query', [['CmdType', 'Catalog'], ['SN', sn], ['DeviceID', deviceId]]);

export const keepaliveNotify = (sn: number, deviceId: string) =>
  document('Notify', [['CmdType', 'Keepalive'], ['SN', sn], ['DeviceID', deviceId], ['Status', 'OK']]);

function itemXml(item: CatalogItem): string {
  const fields: Array<[string, string | number]> = [['DeviceID', item.deviceId]];
  if (item.event) fields.push(['Event', item.event]);
  if (item.name !== undefined) fields.push(['Name', item.name]);
  fields.push(['Manufacturer', 'SharpEyesSim'], ['Model', 'Camera'], ['Owner', 'Owner'], ['CivilCode', item.civilCode ?? item.deviceId.slice(0, 6)]);
  fields.push(['Parental', 0], ['ParentID', item.parentId ?? ''], ['SafetyWay', 0], ['RegisterWay', 1], ['Secrecy', 0]);
  if (item.status !== undefined) fields.push(['Status', item.status]);
  if (item.longitude !== undefined) fields.push(['Longitude', item.longitude]);
  if (item.latitude !== undefined) fields.push(['Latitude', item.latitude]);
  return `<Item>\r\n${fields.map(([n, v]) => `<${n}>${escapeXml(String(v))}</${n}>`).join('\r\n')}\r\n</Item>`;
}

/** A Catalog Response (to a Query) or Notify (a subscription's change), carrying some of `sumNum` items. */
export function catalogDocument(root: 'Response' | 'Notify', sn: number, deviceId: string, sumNum: number, items: readonly CatalogItem[]): string {
  const list = `<DeviceList Num="${items.length}">\r\n${items.map(itemXml).join('\r\n')}\r\n</DeviceList>`;
  return document(root, [['CmdType', 'Catalog'], ['SN', sn], ['DeviceID', deviceId], ['SumNum', sumNum]], list);
}
