import t from 'tap';
import { FlvStreamError, FlvTagReader, MAX_FLV_TAG_BYTES } from '../../src/media/flv-publisher.js';
import { redactUrlCredentials } from '../../src/media/ffmpeg.js';

const HEADER = Buffer.from([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]);

function tag(type: number, timestamp: number, data: Buffer, previous = 11 + data.length): Buffer {
  const head = Buffer.alloc(11);
  head[0] = type;
  head.writeUIntBE(data.length, 1, 3);
  head.writeUIntBE(timestamp & 0xffffff, 4, 3);
  head[7] = (timestamp >>> 24) & 0xff;
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(previous);
  return Buffer.concat([head, data, tail]);
}

t.test('tags come out whole whatever the chunking', async (t) => {
  const stream = Buffer.concat([
    HEADER,
    tag(18, 0, Buffer.from('meta')),
    tag(9, 40, Buffer.from([0x17, 1, 0, 0, 0, 9, 9])),
    tag(8, 0x01000020, Buffer.from([0xaf, 1, 7])),
  ]);
  for (const size of [1, 5, 13, 24, stream.length]) {
    const reader = new FlvTagReader();
    const tags = [];
    for (let i = 0; i < stream.length; i += size) tags.push(...reader.push(stream.subarray(i, i + size)));
    t.same(
      tags.map((x) => [x.type, x.timestamp, x.data.toString('hex')]),
      [
        [18, 0, Buffer.from('meta').toString('hex')],
        [9, 40, '17010000000909'],
        [8, 0x01000020, 'af0107'],
      ],
      `chunks of ${size} bytes`,
    );
  }
});

t.test('a broken stream is refused, not guessed at', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['not FLV', Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n\r\n')])],
    ['a wrong header size', Buffer.from([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 10, 0, 0, 0, 0])],
    ['an unknown tag type', Buffer.concat([HEADER, tag(7, 0, Buffer.from('x'))])],
    ['an encrypted tag', Buffer.concat([HEADER, tag(0x29, 0, Buffer.from('x'))])],
    ['a wrong PreviousTagSize', Buffer.concat([HEADER, tag(9, 0, Buffer.from('xyz'), 5)])],
  ];
  for (const [what, bytes] of cases) t.throws(() => new FlvTagReader().push(bytes), FlvStreamError, what);
  const huge = Buffer.alloc(11);
  huge[0] = 9;
  huge.writeUIntBE(MAX_FLV_TAG_BYTES + 1, 1, 3);
  t.throws(() => new FlvTagReader().push(Buffer.concat([HEADER, huge])), FlvStreamError, 'an oversized tag, from its header alone');
  t.same(new FlvTagReader().push(Buffer.concat([HEADER, huge.subarray(0, 5)])), [], 'a partial tag header waits');
});

t.test('credentials in URLs ffmpeg echoes are redacted', async (t) => {
  t.equal(
    redactUrlCredentials('rtsp://admin:s3cret@10.0.0.9:554/ch1: Connection refused'),
    'rtsp://***@10.0.0.9:554/ch1: Connection refused',
  );
  t.equal(redactUrlCredentials('http://u@cam/x and rtmp://a:b@c/d'), 'http://***@cam/x and rtmp://***@c/d');
  t.equal(redactUrlCredentials('rtsp://10.0.0.9/ch1'), 'rtsp://10.0.0.9/ch1');
});
