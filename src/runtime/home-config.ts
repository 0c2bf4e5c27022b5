/** Where agent9 keeps its data (AGENT9_HOME, default ~/.agent9) and its config file, `config.json` there. */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { FsError } from '../fs/errors.js';

export function agent9Home(env: NodeJS.ProcessEnv = process.env): string {
  const home = env['AGENT9_HOME'];
  return home ? resolve(home) : join(homedir(), '.agent9');
}

export const CONFIG_FILE = 'config.json';

/**
 * One top-level section of `<home>/config.json` (`value` undefined when the file or the section is
 * missing), and the file's path for error messages; EINVAL naming the file when it is not JSON.
 */
export function configSection(home: string, name: string): { value: unknown; file: string } {
  const file = join(home, CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { value: undefined, file };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FsError('EINVAL', file, `malformed JSON: ${(err as Error).message}`);
  }
  return { value: (json as Record<string, unknown> | null)?.[name], file };
}
