import t from 'tap';
import { MemorySlotStore } from '../../src/store/memory/slot-store.js';
import { runSlotStoreConformance } from './slot-store-conformance.js';

runSlotStoreConformance(t, async (options) => {
  // A virtual clock: the embedded store takes all its time from it, so the suite moves time without sleeping.
  let now = Date.parse('2025-11-26T08:00:00Z');
  const store = new MemorySlotStore({ ...options, clock: () => now });
  return {
    store,
    advance: async (ms) => {
      now += ms;
    },
    close: async () => {},
  };
});
