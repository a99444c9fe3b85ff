import t from 'tap';
import { DecisionCache } from '../../src/authz/decision-cache.js';

t.test('computes once per key until cleared', async (t) => {
  const cache = new DecisionCache(10);
  let computed = 0;
  const compute = () => {
    computed += 1;
    return true;
  };
  t.equal(cache.decide('k', compute), true);
  t.equal(cache.decide('k', compute), true);
  t.equal(computed, 1);
  cache.clear();
  cache.decide('k', compute);
  t.equal(computed, 2);
});

t.test('stays within its bound, dropping the oldest answer', async (t) => {
  const cache = new DecisionCache(3);
  for (let i = 0; i < 100; i++) cache.decide(`k${i}`, () => i % 2 === 0);
  t.equal(cache.size, 3);
  let recomputed = false;
  cache.decide('k0', () => (recomputed = true));
  t.equal(recomputed, true, 'an evicted answer is computed again');
  t.equal(cache.decide('k99', () => true), false, 'a recent answer is still cached');
});
