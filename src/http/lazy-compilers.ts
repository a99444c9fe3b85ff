/**
 * Fastify's schema compilers, compiling each route's schema when the route first needs it instead of when the
 * route is registered. Compiling every validator (Ajv) and response serializer (fast-json-stringify) of the API at
 * start-up was about 0.7 s of CPU before the broker could listen; most routes are not called in the first
 * seconds, and some never by a given deployment. The first request of a route compiles its schemas (a few
 * milliseconds) unless compileRemaining() got there first once the broker was ready; from then on it runs the same
 * compiled function as before. Same compilers, same options, same output: only the moment changes.
 */
import type { FastifyServerOptions } from 'fastify';

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type BuildValidator = NonNullable<CompilersFactory['buildValidator']>;
type BuildSerializer = NonNullable<CompilersFactory['buildSerializer']>;

interface Validate {
  (data: unknown, dataCxt?: unknown): unknown;
  errors?: unknown;
  schemaEnv?: unknown;
}

/**
 * A validator that compiles on its first call. It says it is an Ajv function (`schemaEnv`), so Fastify hands it
 * the request as the value's parent: Ajv may then replace a coerced root value, as it could when compiled eagerly.
 */
/**
 * Compilations not yet done, kept only once a process asked for them (main.ts: its one app), so that the many
 * apps a test process builds leave nothing behind: compileRemaining() works through them when the process is idle.
 */
const remaining = new Set<() => void>();
let remember = false;

/** From now on, schemas registered lazily are remembered for compileRemaining(). */
export function rememberForWarmUp(): void {
  remember = true;
}

/**
 * Compiles, one per turn of the event loop (requests in between are answered), every schema not compiled yet:
 * main.ts calls it once the broker is ready, so that a route's first request does not pay for its compilation
 * either. Schemas of apps built later stay lazy until called again.
 */
export async function compileRemaining(): Promise<number> {
  let compiled = 0;
  for (const compile of [...remaining]) {
    await new Promise((resolve) => setImmediate(resolve));
    if (!remaining.has(compile)) continue;
    compile();
    compiled++;
  }
  return compiled;
}

function lazyValidator(build: () => Validate): Validate {
  let fn: Validate | undefined;
  const compile = () => {
    remaining.delete(compile);
    fn ??= build();
    return fn;
  };
  if (remember) remaining.add(compile);
  const validate: Validate = (data, dataCxt) => {
    fn ??= compile();
    const result = fn.schemaEnv !== undefined && dataCxt !== undefined ? fn(data, dataCxt) : fn(data);
    // Fastify reads the errors off the function it called.
    validate.errors = fn.errors;
    return result;
  };
  validate.schemaEnv = true;
  validate.errors = null;
  return validate;
}

export function lazyCompilers(eager: { buildValidator: BuildValidator; buildSerializer: BuildSerializer }): { buildValidator: BuildValidator; buildSerializer: BuildSerializer } {
  return {
    buildValidator: (externalSchemas, options) => {
      // The compiler itself (an Ajv instance with the shared schemas added and checked) is made when first needed too.
      let compiler: ReturnType<BuildValidator> | undefined;
      const compilerOf = () => (compiler ??= eager.buildValidator(externalSchemas, options));
      return ((route: Parameters<ReturnType<BuildValidator>>[0]) => lazyValidator(() => compilerOf()(route) as Validate)) as ReturnType<BuildValidator>;
    },
    buildSerializer: (externalSchemas, options) => {
      let compiler: ReturnType<BuildSerializer> | undefined;
      const compilerOf = () => (compiler ??= eager.buildSerializer(externalSchemas, options));
      return ((route: Parameters<ReturnType<BuildSerializer>>[0]) => {
        let serialize: ((data: unknown) => string) | undefined;
        const compile = () => {
          remaining.delete(compile);
          serialize ??= compilerOf()(route) as (data: unknown) => string;
          return serialize;
        };
        if (remember) remaining.add(compile);
        return (data: unknown) => (serialize ?? compile())(data);
      }) as ReturnType<BuildSerializer>;
    },
  };
}
