/** Where agent9 keeps its data: AGENT9_HOME, default ~/.agent9. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function agent9Home(env: NodeJS.ProcessEnv = process.env): string {
  const home = env['AGENT9_HOME'];
  return home ? resolve(home) : join(homedir(), '.agent9');
}
