/**
 * A capability's section of the server config file, `$AGENT9_HOME/config.json` (`{"compute": {...},
 * "containers": {...}}`): read once when its engine opens, so a changed default takes effect at the next
 * start. A missing file or section is `{}`; a bad one fails the start with EINVAL naming the file and field.
 */
import type { z } from 'zod';
import { configSection } from '../../runtime/home-config.js';
import { validate } from './validation.js';

/** The `name` section of `<home>/config.json`, validated (`{}` when the file or the section is missing). */
export function loadConfigSection<T>(home: string, name: string, schema: z.ZodTypeAny): T {
  const { value, file } = configSection(home, name);
  return parseConfigSection<T>(name, schema, value ?? {}, file);
}

/** A section's value, validated; EINVAL at `where` reads `<name>: field '...': ...`. */
export function parseConfigSection<T>(name: string, schema: z.ZodTypeAny, value: unknown, where = 'config.json'): T {
  return validate(schema, value, where, `${name}: `) as T;
}
