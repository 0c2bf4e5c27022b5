/** Every benchmark case, in the order they run. */
import type { BenchCase } from '../harness.js';
import { storageCase } from './storage.js';
import { computeCase } from './compute.js';

export const cases: BenchCase[] = [storageCase, computeCase];
