import { z } from 'zod';

export const HealthResponse = z.object({ status: z.literal('ok') });

export const CheckSchema = z.looseObject({
  status: z.enum(['ok', 'fail']),
  error: z.string().optional(),
});

export const ReadinessResponse = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z.record(z.string(), CheckSchema),
});
