// The docs' runnable command blocks (fenced as ```sh runnable <name>), and a way to run one the way
// an operator would: bash with -euo pipefail, in the repository, with the deployment's environment.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Snippet {
  name: string;
  file: string;
  line: number;
  code: string;
}

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return markdownFiles(path);
    return entry.name.endsWith('.md') ? [path] : [];
  });
}

/** Every runnable block in README.md and docs/, by name; a name used twice is an error. */
export function runnableSnippets(): Map<string, Snippet> {
  const snippets = new Map<string, Snippet>();
  for (const file of ['README.md', ...markdownFiles('docs')]) {
    const text = readFileSync(file, 'utf8');
    // A block may be indented (inside a list item); its lines lose that indentation.
    for (const match of text.matchAll(/^( *)```sh runnable ([\w-]+)\n([\s\S]*?)^\1```$/gm)) {
      const indent = match[1]!;
      const name = match[2]!;
      const code = match[3]!.split('\n').map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line)).join('\n');
      const line = text.slice(0, match.index).split('\n').length;
      const existing = snippets.get(name);
      if (existing) throw new Error(`runnable block "${name}" is in ${existing.file}:${existing.line} and ${file}:${line}`);
      snippets.set(name, { name, file, line, code });
    }
  }
  return snippets;
}

export interface SnippetRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs snippets in one bash (as an operator runs consecutive blocks in one shell) in the repository root, with exactly `env` (plus PATH and HOME). */
export function runSnippet(snippets: Snippet | Snippet[], env: Record<string, string | undefined>, timeoutMs = 60_000): Promise<SnippetRun> {
  const code = [snippets].flat().map((snippet) => snippet.code).join('\n');
  const child = spawn('bash', ['-euo', 'pipefail', '-c', code], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The JSON objects a snippet printed (curl output is one document per command, without newlines between). */
export function printedJson(stdout: string): any[] {
  const documents: any[] = [];
  for (const line of stdout.replace(/\}\{/g, '}\n{').split('\n')) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('{')) continue;
    try {
      documents.push(JSON.parse(trimmed));
    } catch {
      // a log or banner line
    }
  }
  return documents;
}
