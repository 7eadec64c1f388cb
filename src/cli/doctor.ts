// `npm run cli -- doctor [--json] [--url URL]`: prints the findings of ./doctor-checks.ts
// and exits 0 (all ok), 1 (warnings) or 2 (failures).
import { parseArgs } from 'node:util';
import { exitCode, runDoctor, type Finding } from './doctor-checks.js';

const MARK: Record<Finding['severity'], string> = { ok: 'ok     ', warning: 'WARNING', failure: 'FAILURE' };

function formatFindings(findings: Finding[]): string {
  const lines = findings.map((finding) => {
    const head = `${MARK[finding.severity]}  ${finding.code}: ${finding.message}`;
    return finding.fix ? `${head}\n         fix: ${finding.fix}` : head;
  });
  const warnings = findings.filter((finding) => finding.severity === 'warning').length;
  const failures = findings.filter((finding) => finding.severity === 'failure').length;
  lines.push('', `${failures} failure(s), ${warnings} warning(s), ${findings.length - failures - warnings} ok`);
  return `${lines.join('\n')}\n`;
}

export interface DoctorArgs {
  json: boolean;
  url: string | undefined;
}

/** Throws a TypeError for unknown options or a malformed --url. */
export function parseDoctorArgs(args: string[]): DoctorArgs {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, url: { type: 'string' } } });
  if (values.url !== undefined && !/^https?:\/\/[^/]/.test(values.url)) throw new TypeError('--url must be an http(s) URL, e.g. http://127.0.0.1:8080');
  return { json: values.json ?? false, url: values.url };
}

export async function doctor(args: DoctorArgs, env: Record<string, string | undefined>): Promise<number> {
  const findings = await runDoctor(env, { url: args.url });
  const code = exitCode(findings);
  process.stdout.write(args.json ? `${JSON.stringify({ exit_code: code, findings })}\n` : formatFindings(findings));
  return code;
}
