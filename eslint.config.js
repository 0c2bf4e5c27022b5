import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const LAYERS = ['fs', 'runtime', 'services', 'mounts', 'server', 'mcp', 'http', 'fuse', 'cli'];
const TRANSPORTS = ['http', 'fuse', 'cli'];

/** Import patterns of every layer above `layer` (the transports are side by side: none is above another). */
function layersAbove(layer) {
  const above = TRANSPORTS.includes(layer) ? [] : LAYERS.slice(LAYERS.indexOf(layer) + 1);
  return above.map((l) => `**/${l}/**`);
}

/** A capability's files other than its index.ts (src/services/<capability>/...). */
const SERVICE_INTERNALS = ['**/services/*/**', '!**/services/*/index.js'];

export default tseslint.config(
  { ignores: ['dist/**', 'dist-bench/**', 'node_modules/**', 'bench/results/**', 'bench/native/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { ecmaVersion: 2023, sourceType: 'module' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // The layers, bottom up: src/fs (the core), src/runtime, src/services, src/mounts, src/server (the
  // assembly), src/mcp (the MCP mapping, carried by HTTP and agentctl), then the transports src/http,
  // src/fuse, src/cli. An import may only run down. Each layer
  // has one rule entry (a later entry for the same files would replace, not add to, its patterns).
  {
    // The core must also run in a browser one day: nothing from Node, nothing above it.
    files: ['src/fs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'path', 'os', 'crypto', 'better-sqlite3'], message: 'src/fs is platform-free; inject platform things.' },
            { group: layersAbove('fs'), message: 'src/fs is the core: it imports nothing above it.' },
          ],
        },
      ],
      'no-restricted-globals': ['error', 'Buffer', 'process', 'require'],
    },
  },
  {
    files: ['src/runtime/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: layersAbove('runtime'), message: 'src/runtime knows no services, mounts, assembly or transport: take what you need as a parameter.' }] }] },
  },
  {
    files: ['src/services/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: layersAbove('services'), message: 'services never know who calls them: no mounts, assembly or transport.' }] }] },
  },
  {
    files: ['src/mounts/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: layersAbove('mounts'), message: 'src/mounts is below the assembly and the transports.' }] }] },
  },
  {
    files: ['src/server/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: layersAbove('server'), message: 'the assembly serves every transport and imports none.' },
            { group: SERVICE_INTERNALS, message: "a capability's public entry is its index.ts." },
          ],
        },
      ],
    },
  },
  {
    // The MCP mapping works on a caller's view like a transport, but has no wire of its own: HTTP serves
    // it at /mcp and agentctl bridges stdio to that, so it imports neither of them (nor FUSE).
    files: ['src/mcp/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: layersAbove('mcp'), message: 'src/mcp is carried by the transports (HTTP /mcp, agentctl mcp): it imports none of them.' },
            { group: SERVICE_INTERNALS, message: "a capability's public entry is its index.ts." },
          ],
        },
      ],
    },
  },
  {
    // Transports only translate: they reach a capability through its index.ts, never its internals.
    files: ['src/http/**/*.ts', 'src/fuse/**/*.ts', 'src/cli/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: SERVICE_INTERNALS, message: "a transport reaches a capability through its index.ts only." }] }] },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', Buffer: 'readonly' } },
  },
);
