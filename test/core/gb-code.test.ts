import t from 'tap';
import { GUANGZHOU_DISTRICTS, parseChannelId, validateChannel, validateChannelPatch } from '../../src/core/gb-code.js';

// district(6) grassroots(2) industry(2) type(3) network(1) serial(6)
const id = (network = '1', type = '132', district = '440106') => `${district}01` + `00${type}${network}000001`;

t.test('channel id table', async (t) => {
  const cases: Array<[string, string, RegExp | null]> = [
    ['valid IP camera on the video network', id(), null],
    ['too short', '4401060100132100000', /exactly 20 digits/],
    ['too long', '440106010013210000011', /exactly 20 digits/],
    ['non-digit', '44010601001321000A01', /digits only/],
    ['full-width digit', '44010601001321000０01', /digits only/],
    ['no province', id('1', '132', '000000'), /names no province/],
    ['unknown province 99', id('1', '132', '990106'), /names no province/],
    ['province 10 is not one', id('1', '132', '100106'), /names no province/],
    ['device type 112 (alarm)', id('1', '112'), /device type 112/],
    ['device type 200 (platform)', id('1', '200'), /device type 200/],
    ['network 7 (Internet)', id('7'), /network digit 7/],
    ['network 9 (reserved)', id('9'), /network digit 9/],
  ];
  for (const [label, input, problem] of cases) {
    const parsed = parseChannelId(input);
    if (problem === null) t.ok(parsed.ok, label);
    else t.match(parsed, { ok: false, reason: problem }, label);
  }
});

t.test('network digit maps to the network', async (t) => {
  const expected = ['video', 'video', 'video', 'video', 'video', 'police', 'gov', null, 'interconnect', null];
  expected.forEach((network, digit) => {
    const parsed = parseChannelId(id(String(digit)));
    if (network === null) t.notOk(parsed.ok, `digit ${digit} rejected`);
    else t.match(parsed, { ok: true, network, networkDigit: digit }, `digit ${digit} → ${network}`);
  });
});

t.test('every accepted device type parses, with all parts', async (t) => {
  for (const type of ['131', '132', '111', '118', '113']) t.ok(parseChannelId(id('6', type)).ok, type);
  t.same(parseChannelId('44010301051326000042'), {
    ok: true, district: '440103', grassroots: '01', industry: '05', deviceType: '132',
    networkDigit: 6, network: 'gov', serial: '000042',
  });
});

t.test('Guangzhou table has the 11 districts with sane boxes', async (t) => {
  t.same(GUANGZHOU_DISTRICTS.map((d) => d.code), ['440103', '440104', '440105', '440106', '440111', '440112', '440113', '440114', '440115', '440117', '440118']);
  for (const d of GUANGZHOU_DISTRICTS) {
    const [minLon, minLat, maxLon, maxLat] = d.bbox;
    t.ok(minLon < maxLon && minLat < maxLat, `${d.name} box ordered`);
    t.ok(d.centre.lon >= minLon && d.centre.lon <= maxLon && d.centre.lat >= minLat && d.centre.lat <= maxLat, `${d.name} centre inside`);
  }
});

const good = () => ({
  id: id('6'),
  name: '天河路与体育东路交叉口-东向',
  class: 2,
  location: { lat: 23.13, lon: 113.32 },
  status: 'online',
  ownerAgency: 'transport',
  tags: ['路口'],
  sourceUrl: 'rtsp://camera.invalid/x',
});

t.test('validateChannel accepts a good record and derives district and network', async (t) => {
  const result = validateChannel(good(), { requireSourceUrl: true });
  t.match(result, { ok: true, channel: { district: '440106', network: 'gov', class: 2, status: 'online' } });
  const noStatus = { ...good() } as Record<string, unknown>;
  delete noStatus.status;
  t.match(validateChannel(noStatus), { ok: true, channel: { status: 'online' } }, 'status defaults to online');
  t.ok(validateChannel({ ...good(), district: '440106', network: 'gov' }).ok, 'agreeing district/network accepted');
});

t.test('validateChannel rejections', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an object', [good()], /JSON object/],
    ['unknown field', { ...good(), colour: 'red' }, /unknown field "colour"/],
    ['__proto__ key', JSON.parse('{"__proto__": {"x": 1}, "id": "1"}'), /"__proto__" is not allowed/],
    ['constructor key', { ...good(), constructor: 1 }, /"constructor" is not allowed/],
    ['bad id', { ...good(), id: '123' }, /exactly 20 digits/],
    ['district mismatch', { ...good(), district: '440103' }, /district "440103" disagrees/],
    ['network mismatch', { ...good(), network: 'video' }, /network "video" disagrees/],
    ['lat out of range', { ...good(), location: { lat: 91, lon: 113 } }, /lat is a number from -90 to 90/],
    ['lat NaN as string', { ...good(), location: { lat: 'x', lon: 113 } }, /lat/],
    ['lon out of range', { ...good(), location: { lat: 23, lon: -181 } }, /lon is a number/],
    ['extra location field', { ...good(), location: { lat: 23, lon: 113, alt: 1 } }, /location.alt/],
    ['empty name', { ...good(), name: '' }, /name has 1 to 100/],
    ['long name', { ...good(), name: '路'.repeat(101) }, /name has 1 to 100/],
    ['class 4', { ...good(), class: 4 }, /class is 1, 2 or 3/],
    ['class as string', { ...good(), class: '2' }, /class is 1, 2 or 3/],
    ['bad status', { ...good(), status: 'broken' }, /status is one of/],
    ['bad ownerAgency', { ...good(), ownerAgency: 'Transport' }, /ownerAgency/],
    ['21 tags', { ...good(), tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, /at most 20 tags/],
    ['long tag', { ...good(), tags: ['x'.repeat(33)] }, /each tag/],
    ['ftp source', { ...good(), sourceUrl: 'ftp://camera.invalid/x' }, /rtmp:\/\/, rtsp:\/\//],
    ['file source', { ...good(), sourceUrl: 'file:///etc/passwd' }, /rtmp:\/\/, rtsp:\/\//],
    ['long source', { ...good(), sourceUrl: 'rtsp://camera.invalid/' + 'x'.repeat(500) }, /at most 512/],
  ];
  for (const [label, input, message] of cases) {
    t.match(validateChannel(input), { ok: false, code: 'BAD_REQUEST', message }, label);
  }
  const noSource = { ...good() } as Record<string, unknown>;
  delete noSource.sourceUrl;
  t.match(validateChannel(noSource, { requireSourceUrl: true }), { ok: false, message: /sourceUrl is required/ });
  t.ok(validateChannel(noSource).ok, 'sourceUrl optional unless required');
});

t.test('validateChannelPatch allows only the mutable fields', async (t) => {
  t.same(validateChannelPatch({ status: 'fault', name: '新名字' }), { ok: true, changes: { status: 'fault', name: '新名字' } });
  t.match(validateChannelPatch({ class: 1 }), { ok: false, message: /unknown field "class"/ });
  t.match(validateChannelPatch({ id: id() }), { ok: false, message: /unknown field "id"/ });
  t.match(validateChannelPatch({ location: { lat: 100, lon: 0 } }), { ok: false, message: /lat/ });
  t.match(validateChannelPatch(JSON.parse('{"__proto__": {}}')), { ok: false, message: /not allowed/ });
});
