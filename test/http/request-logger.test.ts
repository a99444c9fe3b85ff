/**
 * request.log (LazyChildLogger): the same lines a pino child writes — bindings, redaction, levels — but no
 * child is made for a request that writes nothing at the configured level.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger, LazyChildLogger } from '../../src/logging.js';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: level as 'info' }, stream), lines };
}

const flush = () => new Promise((r) => setImmediate(r));

t.test('writes what a child would, with its bindings and redaction', async (t) => {
  const { logger, lines } = capture('info');
  const log = new LazyChildLogger(logger, { reqId: 'r-1' }, {});
  log.info({ password: 'hunter2-secret', code: 'X' }, 'sent Bearer abc.def.ghi');
  log.debug('below the level');
  await flush();
  t.equal(lines.length, 1, 'one line: debug is below info');
  t.equal(lines[0]!.reqId, 'r-1');
  t.equal(lines[0]!.password, '[redacted]');
  t.equal(lines[0]!.msg, 'sent Bearer [redacted]');
  t.equal(log.child({ socket: 's' }).bindings().reqId, 'r-1', 'its children inherit the bindings');
});

t.test('makes no child while nothing is written, and honours a route level', async (t) => {
  const { logger, lines } = capture('warn');
  let made = 0;
  const counted = Object.create(logger, { child: { value: (...args: Parameters<typeof logger.child>) => (made++, logger.child(...args)) } }) as typeof logger;
  const quiet = new LazyChildLogger(counted, { reqId: 'r-2' }, {});
  quiet.info('incoming request');
  quiet.info('request completed');
  t.equal(made, 0, 'no child for lines below the level');
  t.equal(quiet.isLevelEnabled('info'), false);
  t.equal(quiet.level, 'warn');
  quiet.error('failed');
  t.equal(made, 1, 'the first written line makes it');
  quiet.error('again');
  t.equal(made, 1, 'once');
  const verbose = new LazyChildLogger(counted, { reqId: 'r-3' }, { level: 'debug' });
  t.equal(verbose.isLevelEnabled('debug'), true, "a route's own level");
  verbose.debug('route-level line');
  await flush();
  t.same(
    lines.map((l) => [l.reqId, l.msg]),
    [
      ['r-2', 'failed'],
      ['r-2', 'again'],
      ['r-3', 'route-level line'],
    ],
  );
});
