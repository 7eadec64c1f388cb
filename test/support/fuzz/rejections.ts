// Unhandled promise rejections, collected process-wide (the listener is registered once, when this
// module loads) so each test can check none happened during its own part of the run.
import type { Test } from 'tap';

const rejections: unknown[] = [];
process.on('unhandledRejection', (reason) => rejections.push(reason));

/** No promise rejected unhandled since the last check (each test checks its own). */
export async function noUnhandledRejections(t: Test, what: string) {
  await new Promise((resolve) => setImmediate(resolve));
  const found = rejections.splice(0);
  t.same(found.map((reason) => String((reason as Error)?.stack ?? reason).slice(0, 500)), [], `no unhandled promise rejection (${what})`);
}
