/**
 * The SIP parser and TCP framer never trust what a peer says: table tests of what they accept and refuse,
 * then fast-check fuzzing with random, truncated and mutated messages (never a throw, never a frame past
 * the bound), and a live broker fed garbage over UDP and TCP that still registers a device afterwards.
 */
import t from 'tap';
import fc from 'fast-check';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import iconv from 'iconv-lite';
import { parseSipMessage, serializeSipMessage, SipHeaders, parseNameAddr, parseVia, parseDigest, type SipLimits } from '../../src/gb28181/sip-message.js';
import { SipStreamFramer } from '../../src/gb28181/sip-transport.js';
import { decodeBody, parseXml, readManscdp, readCatalogItems, catalogDocument, encodeBody } from '../../src/gb28181/manscdp.js';
import { until } from '../helper.js';
import { buildGbBroker } from './helpers.js';

const LIMITS: SipLimits = { maxMessageBytes: 4096, maxHeaders: 20 };

const register = (body = '', extra = '') =>
  Buffer.from(
    'REGISTER sip:44010000002000000001@4401000000 SIP/2.0\r\n' +
      'Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK776asdhds\r\n' +
      'From: <sip:44010600001180000001@4401000000>;tag=1928301774\r\n' +
      'To: <sip:44010600001180000001@4401000000>\r\n' +
      'Call-ID: a84b4c76e66710\r\n' +
      'CSeq: 1 REGISTER\r\n' +
      'Contact: <sip:44010600001180000001@127.0.0.1:5070>\r\n' +
      'Expires: 3600\r\n' +
      extra +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );

t.test('a well-formed request parses; headers by full and compact name; serializer round-trips', async (t) => {
  const parsed = parseSipMessage(register('hello'), LIMITS);
  t.ok(parsed.ok);
  if (!parsed.ok || parsed.message.kind !== 'request') return;
  t.equal(parsed.message.method, 'REGISTER');
  t.equal(parsed.message.body.toString(), 'hello');
  t.equal(parseNameAddr(parsed.message.headers.get('f'))?.parsed?.user, '44010600001180000001', 'compact "f" finds From');
  t.equal(parseVia(parsed.message.headers.get('via'))?.params.get('branch'), 'z9hG4bK776asdhds');
  const again = parseSipMessage(serializeSipMessage(parsed.message), LIMITS);
  t.ok(again.ok && again.message.kind === 'request' && again.message.body.toString() === 'hello');
  const digest = parseDigest('Digest username="a", realm="4401000000", nonce="n,1", uri="sip:x", response="abc", qop=auth, nc=00000001');
  t.equal(digest?.get('nonce'), 'n,1', 'a comma inside quotes stays in the value');
  t.equal(digest?.get('qop'), 'auth');
  const headers = SipHeaders.of([['Via', 'a, b'], ['v', 'c']]);
  t.same(headers.getAll('via'), ['a', 'b', 'c'], 'Via lists split and compact forms merge');
});

t.test('what is refused, and whether it can be answered 400', async (t) => {
  const cases: Array<[string, Buffer, boolean]> = [
    ['Content-Length beyond what arrived', Buffer.from(register('hello').toString().replace('Content-Length: 5', 'Content-Length: 500')), true],
    ['Content-Length not a number', Buffer.from(register('x').toString().replace('Content-Length: 1', 'Content-Length: -1')), true],
    ['too many headers', register('', 'X-A: 1\r\n'.repeat(30)), false],
    ['over the size limit', register('x'.repeat(5000)), false],
    ['no blank line', register().subarray(0, 120), false],
    ['a CSeq that lies about the method', Buffer.from(register().toString().replace('CSeq: 1 REGISTER', 'CSeq: 1 INVITE')), true],
    ['no Call-ID', Buffer.from(register().toString().replace('Call-ID: a84b4c76e66710\r\n', '')), false],
    ['a control character in a value', Buffer.from(register().toString().replace('Expires: 3600', 'Expires: 36\x0100')), false],
    ['not SIP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), false],
    ['a lower-case method', Buffer.from(register().toString().replace('REGISTER sip', 'register sip')), true],
  ];
  for (const [name, buf, answerable] of cases) {
    const result = parseSipMessage(buf, LIMITS);
    t.notOk(result.ok, `${name}: refused`);
    if (!result.ok) t.equal(result.request !== undefined, answerable, `${name}: ${answerable ? 'answered 400' : 'dropped'}`);
  }
});

t.test('fuzz: random bytes, truncations and mutations never throw', async () => {
  const valid = register('<?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN></Notify>');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 6000 }), (bytes) => {
      parseSipMessage(Buffer.from(bytes), LIMITS);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: valid.length }), (cut) => {
      const result = parseSipMessage(valid.subarray(0, cut), LIMITS);
      if (cut < valid.length && result.ok) {
        // A cut inside the body must never parse as the full message.
        if (result.message.body.length !== 0 && cut < valid.length) throw new Error(`truncated at ${cut} parsed with a body`);
      }
    }),
    { numRuns: valid.length + 1 },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 20 }), (edits) => {
      const copy = Buffer.from(valid);
      for (const [at, value] of edits) copy[at] = value;
      parseSipMessage(copy, LIMITS);
      const doc = readManscdp(copy.subarray(copy.indexOf('<?xml')));
      if (doc) readCatalogItems(doc);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), (text) => {
      try {
        parseXml(text);
      } catch (err) {
        if ((err as Error).name !== 'XmlError') throw err;
      }
    }),
    { numRuns: 3000 },
  );
});

t.test('fuzz: the TCP framer cuts streams split anywhere and never holds more than the bound', async (t) => {
  const one = register('abc');
  fc.assert(
    fc.property(fc.array(fc.nat(one.length * 3), { maxLength: 10 }), (cuts) => {
      const stream = Buffer.concat([one, Buffer.from('\r\n\r\n'), one, one]);
      const points = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
      const framer = new SipStreamFramer(LIMITS);
      const frames: Buffer[] = [];
      let last = 0;
      for (const point of [...points, stream.length]) {
        const got = framer.push(stream.subarray(last, point));
        if (got === 'overflow') throw new Error('overflow on a good stream');
        frames.push(...got);
        last = point;
      }
      if (frames.length !== 3 || !frames.every((f) => f.equals(one))) throw new Error(`got ${frames.length} frames`);
    }),
  );
  const liar = new SipStreamFramer(LIMITS);
  t.equal(liar.push(Buffer.from(register().toString().replace('Content-Length: 0', 'Content-Length: 999999'))), 'overflow', 'a length past the bound ends the stream');
  const endless = new SipStreamFramer(LIMITS);
  let result: Buffer[] | 'overflow' = [];
  for (let i = 0; i < 10 && result !== 'overflow'; i++) result = endless.push(Buffer.alloc(1000, 0x41));
  t.equal(result, 'overflow', 'headers that never end stop at the bound');
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 2000 }), { maxLength: 10 }), (chunks) => {
      const framer = new SipStreamFramer(LIMITS);
      for (const chunk of chunks) {
        const got = framer.push(Buffer.from(chunk));
        if (got === 'overflow') return;
        for (const frame of got) {
          if (frame.length > LIMITS.maxMessageBytes) throw new Error('frame past the bound');
          parseSipMessage(frame, LIMITS);
        }
      }
    }),
    { numRuns: 2000 },
  );
});

t.test('MANSCDP bodies: GB2312 and UTF-8 both read, whatever the declaration says', async (t) => {
  const xml = catalogDocument('Response', 7, '44010600002000000001', 1, [{ deviceId: '44010600001310000001', name: '天河路口', status: 'ON' }]);
  const gb = encodeBody(xml, 'gb2312');
  t.equal(decodeBody(gb).encoding, 'gb2312');
  t.equal(readCatalogItems(readManscdp(gb)!).items[0]?.name, '天河路口', 'GB2312 name decoded');
  const utf8 = Buffer.from(xml.replace('GB2312', 'UTF-8'));
  t.equal(readCatalogItems(readManscdp(utf8)!).items[0]?.name, '天河路口', 'UTF-8 name decoded');
  const mislabelled = iconv.encode(xml.replace('encoding="GB2312"', 'encoding="UTF-8"'), 'gb18030');
  t.equal(readCatalogItems(readManscdp(mislabelled)!).items[0]?.name, '天河路口', 'GB2312 labelled UTF-8 (invalid UTF-8) still read');
  t.throws(() => parseXml('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'), { name: 'XmlError' }, 'no DOCTYPE, no entity expansion');
  t.throws(() => parseXml('<a>'.repeat(40)), { name: 'XmlError' }, 'depth is bounded');
});

t.test('a live broker fed garbage over UDP and TCP keeps serving', async (t) => {
  const tb = await buildGbBroker(t);
  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  const answers: string[] = [];
  udp.on('message', (m) => answers.push(m.toString('latin1')));
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
  const send = (buf: Buffer) => new Promise<void>((resolve) => udp.send(buf, tb.sipPort, '127.0.0.1', () => resolve()));
  for (const bytes of fc.sample(fc.uint8Array({ minLength: 1, maxLength: 1400 }), 300)) await send(Buffer.from(bytes));
  const valid = register('');
  for (let cut = 1; cut < valid.length; cut += 7) await send(valid.subarray(0, cut));
  const liar = Buffer.from(valid.toString().replace('Content-Length: 0', 'Content-Length: 900') + 'short');
  // The flood may overrun the socket's receive buffer (UDP drops): ask again until the answer comes.
  await until(t, 'a 400 for the message whose Content-Length lies', async () => {
    await send(liar);
    await new Promise((r) => setTimeout(r, 200));
    return answers.some((a) => a.startsWith('SIP/2.0 400'));
  });

  const socket = connect({ host: '127.0.0.1', port: tb.sipPort });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
  socket.write(Buffer.alloc(70_000, 0x41));
  await closed;
  t.pass('a TCP peer sending headers past the bound is disconnected');

  const { id, password } = await tb.device();
  const sim = await tb.simulator({ deviceId: id, password, channels: 0 }, false);
  t.equal(await sim.register(), 200, 'and a real device still registers');
});
