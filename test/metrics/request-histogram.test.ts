// The hand-kept request histogram renders exactly what prom-client's Histogram renders for the
// same observations, so replacing one with the other changed no scrape, dashboard or alert.
import fc from 'fast-check';
import { Histogram, Registry, type Metric } from 'prom-client';
import t from 'tap';
import { DURATION_BUCKETS, RequestHistogram } from '../../src/plugins/request-histogram.js';

const NAME = 'test_request_duration_seconds';
const HELP = 'Requests and how long they took.';
const LABELS = ['method', 'route', 'status'] as const;

/** Both histograms, each in a registry of its own, fed the same observations. */
function pair() {
  const ours = new RequestHistogram(NAME, HELP, LABELS);
  const oursRegistry = new Registry();
  oursRegistry.registerMetric(ours as unknown as Metric);
  const theirsRegistry = new Registry();
  const theirs = new Histogram({ name: NAME, help: HELP, labelNames: LABELS, registers: [theirsRegistry] });
  return { ours, oursRegistry, theirs, theirsRegistry };
}

const labelSet = fc.tuple(fc.constantFrom('GET', 'POST'), fc.constantFrom('/healthz', '/api/v1/hooks/:webhook_id', '(unmatched)'), fc.constantFrom('200', '202', '404', '503'));
// Bucket bounds themselves, just either side of them, zero and far beyond the last one.
const seconds = fc.oneof(
  fc.constantFrom(0, ...DURATION_BUCKETS, 30),
  fc.constantFrom(...DURATION_BUCKETS).map((bound) => bound * (1 + 1e-9)),
  fc.double({ min: 0, max: 20, noNaN: true }),
);

t.test('renders the same exposition as prom-client for any observations', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(labelSet, seconds), { maxLength: 60 }), async (observations) => {
      const { ours, oursRegistry, theirs, theirsRegistry } = pair();
      for (const [[method, route, status], value] of observations) {
        ours.child(method, route, status).observe(value);
        theirs.labels(method, route, status).observe(value);
      }
      t.equal(await oursRegistry.metrics(), await theirsRegistry.metrics());
    }),
    { seed: 20261202, numRuns: 200 },
  );
});

t.test('an observation on a bucket bound counts in that bucket, as Prometheus defines le', async (t) => {
  const { ours, oursRegistry } = pair();
  ours.child('GET', '/healthz', '200').observe(0.005);
  const text = await oursRegistry.metrics();
  t.match(text, `${NAME}_bucket{le="0.005",method="GET",route="/healthz",status="200"} 1`);
  t.match(text, `${NAME}_count{method="GET",route="/healthz",status="200"} 1`);
});

t.test('reset zeroes every series, and children bound before it keep counting', async (t) => {
  const { ours, oursRegistry } = pair();
  const child = ours.child('GET', '/healthz', '200');
  child.observe(0.2);
  child.observe(0.3);
  ours.reset();
  child.observe(0.001);
  const text = await oursRegistry.metrics();
  t.match(text, `${NAME}_count{method="GET",route="/healthz",status="200"} 1`);
  t.match(text, `${NAME}_sum{method="GET",route="/healthz",status="200"} 0.001`);
  t.equal(ours.child('GET', '/healthz', '200'), child, 'the same label values give the same child');
});
