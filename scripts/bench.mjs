// Placeholder until the benchmark issue lands: says so instead of pretending to measure.
process.stdout.write(
  'npm run bench: the benchmark suite is not built yet (see the "Prove it" issue).\n' +
    'Nothing was measured.\n',
);
