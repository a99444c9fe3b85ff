/**
 * `new Date(ms).toISOString()` without a Date: every grant writes three or four timestamps (the audit entry's
 * `at`, the session's createdAt and expiresAt, the end event's `at`), and the builtin was ~3% of the broker's
 * busy time under allocate + release. The text up to the minute is kept for the last few minutes asked (a
 * grant asks for now and now + the lease, often a minute apart); only the seconds and milliseconds are
 * written per call. Anything outside the plain four-digit-year range, or not a
 * whole millisecond, goes to the builtin, so the answer is always the builtin's.
 */
const MINUTE_MS = 60_000;
/** 10000-01-01T00:00:00.000Z: from here toISOString writes a six-digit year. */
const FOUR_DIGIT_YEAR_END_MS = 253_402_300_800_000;

/** Direct-mapped by minute: slot minute % MINUTE_SLOTS holds that minute's "YYYY-MM-DDTHH:MM:". */
const MINUTE_SLOTS = 4;
const cachedMinutes: number[] = new Array<number>(MINUTE_SLOTS).fill(Number.NaN);
const cachedPrefixes: string[] = new Array<string>(MINUTE_SLOTS).fill('');

export function isoTime(ms: number = Date.now()): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= FOUR_DIGIT_YEAR_END_MS) return new Date(ms).toISOString();
  const minute = Math.floor(ms / MINUTE_MS);
  const slot = minute % MINUTE_SLOTS;
  if (cachedMinutes[slot] !== minute) {
    cachedPrefixes[slot] = new Date(minute * MINUTE_MS).toISOString().slice(0, 17);
    cachedMinutes[slot] = minute;
  }
  const cachedPrefix = cachedPrefixes[slot];
  const withinMinute = ms - minute * MINUTE_MS;
  const seconds = Math.floor(withinMinute / 1000);
  const millis = withinMinute - seconds * 1000;
  return `${cachedPrefix}${seconds < 10 ? '0' : ''}${seconds}.${millis < 100 ? (millis < 10 ? '00' : '0') : ''}${millis}Z`;
}
