// Periodic maintenance, safe to run on every instance at once: expired leases go back to pending
// (or dead), deliveries past WEBHOOK_RETENTION_DAYS are deleted in batches (SKIP LOCKED), and
// expired OAuth states are deleted.
import fp from 'fastify-plugin';
import { expireLeases, pruneDeliveries } from '../db/deliveries.js';
import { pruneOAuthStates } from '../db/oauth.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs the maintenance jobs once now (also runs on a timer). */
    runMaintenance(): Promise<{ expired: number; pruned: number }>;
  }
}

export default fp<{ intervalMs: number }>(
  async (app, { intervalMs }) => {
    let running: Promise<{ expired: number; pruned: number }> | undefined;
    const run = () =>
      (running ??= (async () => {
        try {
          const expired = await expireLeases(app.db, null, app.config.webhookMaxAttempts);
          const pruned = await pruneDeliveries(app.db, app.config.webhookRetentionDays);
          // OAuth flows that were started but never came back leave expired states behind.
          await pruneOAuthStates(app.db);
          if (expired + pruned > 0) app.log.info({ expired_leases: expired, pruned_deliveries: pruned }, 'maintenance');
          return { expired, pruned };
        } finally {
          running = undefined;
        }
      })());
    app.decorate('runMaintenance', run);
    const timer = setInterval(() => {
      run().catch((err: unknown) => app.log.warn({ err }, 'maintenance failed; will retry'));
    }, intervalMs);
    timer.unref();
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await running?.catch(() => {});
    });
  },
  { name: 'jobs', dependencies: ['database'] },
);
