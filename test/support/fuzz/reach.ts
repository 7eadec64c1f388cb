// Reach: how many answers of each status class every route gave, so a run can check each route
// answered a success at least once (a route that never does was not really exercised).
import { REDIRECTS, type Route } from './routes.js';

/** Routes that cannot answer a 2xx by design: the reason. They must still answer a success (REDIRECTS). */
export const REACH_EXCEPTIONS: Record<string, string> = {
  '/docs/static/index.html': REDIRECTS['/docs/static/index.html']!,
};

type StatusClass = '2xx' | '3xx' | '4xx' | '5xx';
export const reach = new Map<string, Record<StatusClass, number>>();

export function count(route: Route, status: number) {
  const counts = reach.get(route.key) ?? { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  const key = `${Math.min(5, Math.max(2, Math.floor(status / 100)))}xx` as StatusClass;
  counts[key] += 1;
  reach.set(route.key, counts);
}
