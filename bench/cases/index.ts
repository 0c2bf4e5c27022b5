/** Every benchmark case, in the order they run. */
import type { BenchCase } from '../harness.js';
import { storageCase } from './storage.js';
import { runtimeCase } from './runtime.js';
import { httpCase, sseCase } from './http.js';
import { fuseCase } from './fuse.js';
import { computeCase } from './compute.js';
import { containersCase } from './containers.js';
import { bundleCase } from './bundle.js';
import { nostrCase } from './nostr.js';
import { mcpCase } from './mcp.js';

export const cases: BenchCase[] = [storageCase, runtimeCase, httpCase, sseCase, fuseCase, computeCase, containersCase, bundleCase, nostrCase, mcpCase];
