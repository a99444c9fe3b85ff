/**
 * The AMF0 an RTMP pull needs: encoding its commands, decoding a server's replies. The decoder is bounded
 * (nesting depth, element counts: a reply is a few small objects) and throws Amf0Error on anything it does
 * not know or that runs past the end, never reads out of bounds.
 * @see https://rtmp.veriskope.com/pdf/amf0-file-format-specification.pdf
 */
export type Amf0Value = number | boolean | string | null | undefined | Date | Amf0Value[] | { [key: string]: Amf0Value };

export class Amf0Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Amf0Error';
  }
}

const MAX_DEPTH = 8;
const MAX_ELEMENTS = 1024;

function encodeString(value: string): Buffer {
  const text = Buffer.from(value, 'utf8');
  if (text.length > 0xffff) {
    const out = Buffer.alloc(5 + text.length);
    out[0] = 12;
    out.writeUInt32BE(text.length, 1);
    text.copy(out, 5);
    return out;
  }
  const out = Buffer.alloc(3 + text.length);
  out[0] = 2;
  out.writeUInt16BE(text.length, 1);
  text.copy(out, 3);
  return out;
}

function encodeKey(key: string): Buffer {
  const text = Buffer.from(key, 'utf8');
  const out = Buffer.alloc(2 + text.length);
  out.writeUInt16BE(text.length, 0);
  text.copy(out, 2);
  return out;
}

export function encodeAmf0(value: Amf0Value): Buffer {
  if (typeof value === 'number') {
    const out = Buffer.alloc(9);
    out[0] = 0;
    out.writeDoubleBE(value, 1);
    return out;
  }
  if (typeof value === 'boolean') return Buffer.from([1, value ? 1 : 0]);
  if (typeof value === 'string') return encodeString(value);
  if (value === null) return Buffer.from([5]);
  if (value === undefined) return Buffer.from([6]);
  if (value instanceof Date || Array.isArray(value)) throw new Amf0Error('dates and arrays are not encoded');
  const parts: Buffer[] = [Buffer.from([3])];
  for (const [key, v] of Object.entries(value)) parts.push(encodeKey(key), encodeAmf0(v));
  parts.push(Buffer.from([0, 0, 9]));
  return Buffer.concat(parts);
}

export function encodeAmf0Values(values: Amf0Value[]): Buffer {
  return Buffer.concat(values.map(encodeAmf0));
}

class Reader {
  offset = 0;
  constructor(readonly buffer: Buffer) {}

  need(bytes: number): void {
    if (this.offset + bytes > this.buffer.length) throw new Amf0Error('AMF0 value runs past its message');
  }

  u8(): number {
    this.need(1);
    return this.buffer[this.offset++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  text(length: number): string {
    this.need(length);
    const v = this.buffer.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return v;
  }

  properties(depth: number, into: { [key: string]: Amf0Value }): void {
    for (let count = 0; ; count++) {
      if (count > MAX_ELEMENTS) throw new Amf0Error('AMF0 object too large');
      const key = this.text(this.u16());
      if (key === '') {
        if (this.u8() !== 9) throw new Amf0Error('AMF0 object without its end marker');
        return;
      }
      into[key] = this.value(depth + 1);
    }
  }

  value(depth: number): Amf0Value {
    if (depth > MAX_DEPTH) throw new Amf0Error('AMF0 nesting too deep');
    const marker = this.u8();
    switch (marker) {
      case 0: {
        this.need(8);
        const v = this.buffer.readDoubleBE(this.offset);
        this.offset += 8;
        return v;
      }
      case 1:
        return this.u8() !== 0;
      case 2:
        return this.text(this.u16());
      case 3: {
        const object: { [key: string]: Amf0Value } = {};
        this.properties(depth, object);
        return object;
      }
      case 5:
        return null;
      case 6:
        return undefined;
      case 8: {
        this.u32();
        const object: { [key: string]: Amf0Value } = {};
        this.properties(depth, object);
        return object;
      }
      case 10: {
        const count = this.u32();
        if (count > MAX_ELEMENTS) throw new Amf0Error('AMF0 array too large');
        const array: Amf0Value[] = [];
        for (let i = 0; i < count; i++) array.push(this.value(depth + 1));
        return array;
      }
      case 11: {
        this.need(10);
        const v = new Date(this.buffer.readDoubleBE(this.offset));
        this.offset += 10;
        return v;
      }
      case 12:
        return this.text(this.u32());
      default:
        throw new Amf0Error(`AMF0 type ${marker} is not read`);
    }
  }
}

/** Every value in `buffer`, in order (a command: name, transaction id, command object, arguments). */
export function decodeAmf0Values(buffer: Buffer): Amf0Value[] {
  const reader = new Reader(buffer);
  const values: Amf0Value[] = [];
  while (reader.offset < buffer.length) {
    if (values.length >= MAX_ELEMENTS) throw new Amf0Error('AMF0 message with too many values');
    values.push(reader.value(0));
  }
  return values;
}
