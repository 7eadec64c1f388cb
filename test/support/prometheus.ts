// Reading /metrics in tests: scrape through the app, check the families with an independent
// parser and every sample line against the text format, and look samples up by name and labels.
// (That parser folds labelled histograms into one series, so samples are read line by line here.)
import type { FastifyInstance } from 'fastify';
import parse, { type Family } from 'parse-prometheus-text-format';

/** A sample line of the text format: name, optional labels, a Go float, optional timestamp. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? ([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|[Nn]a[Nn])(?: -?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  text: string;
  families: Family[];
  samples: Sample[];
  /** Lines that are neither comments, blank, nor well-formed samples. */
  malformed: string[];
}

export function parseExposition(text: string): Scrape {
  const malformed: string[] = [];
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (!match) {
      malformed.push(line);
      continue;
    }
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(LABEL)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]!.replace(/^([-+]?)Inf$/, '$1Infinity')) });
  }
  return { text, families: parse(text), samples, malformed };
}

export async function scrape(app: FastifyInstance, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await app.inject({ method: 'GET', url: '/metrics', headers });
  if (res.statusCode !== 200) throw new Error(`scrape: ${res.statusCode} ${res.body}`);
  return parseExposition(res.body);
}

export function family(scraped: Scrape, name: string): Family | undefined {
  return scraped.families.find((f) => f.name === name);
}

const sameLabels = (labels: Record<string, string>, wanted: Record<string, string>) =>
  Object.keys(labels).length === Object.keys(wanted).length && Object.entries(wanted).every(([key, value]) => labels[key] === value);

/** The value of the sample with this name and exactly these labels (0 when absent). */
export function sample(scraped: Scrape, name: string, labels: Record<string, string> = {}): number {
  return scraped.samples.find((s) => s.name === name && sameLabels(s.labels, labels))?.value ?? 0;
}

/** Every sample of a name (e.g. one per label set). */
export function samplesOf(scraped: Scrape, name: string): Sample[] {
  return scraped.samples.filter((s) => s.name === name);
}

/** The observation count of the histogram series with exactly these labels (0 when absent). */
export function observations(scraped: Scrape, name: string, labels: Record<string, string>): number {
  return sample(scraped, `${name}_count`, labels);
}
