// What a fuzz run can be told through the environment, read in one place so every module draws
// from the same run: FUZZ_SEED (the base seed), FUZZ_RUNS (runs per route and kind), FUZZ_ROUTE (one route only).

export const SEED = Number(process.env.FUZZ_SEED ?? 20_261_123);
export const RUNS = Number(process.env.FUZZ_RUNS ?? 25);
export const ONLY = process.env.FUZZ_ROUTE || undefined;
