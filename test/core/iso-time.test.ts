import t from 'tap';
import fc from 'fast-check';
import { isoTime } from '../../src/core/iso-time.js';

t.test('isoTime writes what Date.prototype.toISOString writes', async (t) => {
  const edges = [0, 1, 999, 1000, 59_999, 60_000, 1_764_720_000_000, 1_764_720_059_999, 951_782_400_000, 253_402_300_799_999];
  for (const ms of edges) t.equal(isoTime(ms), new Date(ms).toISOString(), `${ms}`);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 253_402_300_799_999 }), (ms) => isoTime(ms) === new Date(ms).toISOString()),
    { numRuns: 5000 },
  );
  // Calls that go back and forth between minutes, as concurrent requests do.
  for (const ms of [1_764_720_061_000, 1_764_720_000_500, 1_764_720_061_001]) t.equal(isoTime(ms), new Date(ms).toISOString());
  // Minutes that share a cache slot (four apart) and ones that do not, interleaved.
  for (const minutes of [0, 4, 1, 8, 4, 0, 5, 1]) {
    const ms = 1_764_720_000_123 + minutes * 60_000;
    t.equal(isoTime(ms), new Date(ms).toISOString(), `minute +${minutes}`);
  }
});

t.test('outside the four-digit-year range, or not a whole millisecond, it is the builtin', async (t) => {
  for (const ms of [-1, -62_198_755_200_000, 253_402_300_800_000, 8.64e15, 1.5, 1_764_720_000_000.7]) t.equal(isoTime(ms), new Date(ms).toISOString(), `${ms}`);
  t.throws(() => isoTime(Number.NaN), RangeError, 'an invalid time throws as toISOString does');
});

t.test('without an argument it is the current time', async (t) => {
  const before = Date.now();
  const at = Date.parse(isoTime());
  t.ok(at >= before && at <= Date.now());
});
