/** Every benchmark case, in the order they run. */
import type { BenchCase } from '../harness.js';
import { storageCase } from './storage.js';
import { fuseCase } from './fuse.js';

export const cases: BenchCase[] = [storageCase, fuseCase];
