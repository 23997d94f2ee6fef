// The Node.js flags the daemon runs with: its unit's ExecStart (install-units.ts) and its
// executable's #! line (qosd.ts) name them, and the test helpers start it with them.
//
// --single-threaded-gc: V8 collects each thread's garbage on that thread instead of on helper
// threads the whole process shares. The periodic jobs' worker makes most of the daemon's garbage
// (a scrape's exposition on a large node, a pass's paths, a tick's samples); its
// collection ran on those helpers, at the daemon's priority, and took cores from the API's thread
// while the worker itself ran ten nice levels lower (bench/responsiveness.js measures the API's
// latency under the jobs with and without it; the figures are in bench/results). The flag cannot be
// set from inside the process (V8 aborts) nor through NODE_OPTIONS.
export const DAEMON_NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];
