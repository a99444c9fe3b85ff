/** `npm run bench -- <name>`: each benchmark prints its figure beside a baseline of the same run. */
const benches: Record<string, () => Promise<unknown>> = {
  catalog: async () => (await import('./catalog.js')).catalogBench(),
  allocate: async () => (await import('./allocate.js')).allocateBench('memory'),
  'allocate-redis': async () => (await import('./allocate.js')).allocateBench('redis'),
  'first-frame': async () => (await import('./first-frame.js')).firstFrameBench(),
  'media-capacity': async () => (await import('./media-capacity.js')).mediaCapacityBench(),
  burst: async () => (await import('./burst.js')).burstBench(),
  startup: async () => (await import('./startup.js')).startupBench(),
  soak: async () => (await import('./soak.js')).soakBench(),
  'gb-first-frame': async () => (await import('./gb-first-frame.js')).gbFirstFrameBench(),
  'gb-devices': async () => (await import('./gb-devices.js')).gbDevicesBench(),
};

const name = process.argv[2];
const bench = name ? benches[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}>`);
  process.exit(2);
}
await bench();
