/**
 * Lets a child process run the TypeScript sources directly: `node --import ./test/support/ts-loader.mjs x.ts`.
 * Tests that must run agent9 in another process (crash tests, servers for FUSE) use it. Each module is
 * transpiled with the project's TypeScript (no type check); `./x.js` imports resolve to `./x.ts`.
 */
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
