// Imported first by cli/qosd.ts, before the modules that take a few hundred milliseconds to load:
// a SIGTERM that arrives while qosd is still starting (a quick restart) is remembered, not fatal,
// and the daemon stops cleanly as soon as it is up.
export const earlyStop: { signal: string | undefined; handler: ((signal: string) => void) | undefined } = {
  signal: undefined,
  handler: undefined,
};

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (earlyStop.handler) earlyStop.handler(signal);
    else earlyStop.signal ??= signal;
  });
}
