// Cooperative slicing for long periodic jobs: a job calls `check()` between small steps, and it
// gives the event loop back once it has held it for `budgetMs`, so an API request or a flex call
// that arrives meanwhile waits for one slice, not for the whole job.
//
// Jobs that yield wait in one queue, and one of them resumes per turn of the event loop: with
// the reconcile pass, the sweeps, a scrape and a controller tick all running, a plain
// setImmediate each would run all four slices back to back before the loop polled for requests
// again, and a request would wait for all four (README, "Benchmarks": bench/responsiveness.js).
const waiting: (() => void)[] = [];
let pumping = false;
let nextTurn: (f: () => void) => void = setImmediate;

/**
 * From now on, this thread's jobs rest between slices: the next slice waits for a timer,
 * so the thread sleeps and gives its core up, where a setImmediate keeps it running. For a
 * background thread (the periodic jobs' worker): a lower nice alone did not keep it from delaying
 * the daemon's thread, since Linux's scheduler (EEVDF, 6.6 on) lets a running thread finish its
 * time slice before a waking one runs. The jobs' CPU stays the same and their wall time grows
 * (the figures: bench/results/responsiveness.json and the README).
 */
export function restBetweenSlices(): void {
  nextTurn = (f) => setTimeout(f, 0);
}

function pump(): void {
  waiting.shift()?.();
  if (waiting.length > 0) nextTurn(pump);
  else pumping = false;
}

function yieldToLoop(): Promise<void> {
  return new Promise<void>((resolve) => {
    waiting.push(resolve);
    if (!pumping) {
      pumping = true;
      nextTurn(pump);
    }
  });
}

/** The monotonic clock slices are measured on, in ms. */
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export class TimeSlice {
  private sliceStarted: number;
  private waitedBefore: number;
  /** The longest time the job held the loop without yielding, in ms. */
  longestMs = 0;
  /**
   * The longest slice without the time its thread waited for a core, in ms, when the slice was
   * given a wait clock (benchmarks): a slice's wall time also counts the time other threads and
   * processes ran meanwhile, which the job did not spend.
   */
  longestRunMs = 0;
  /** How many times the job yielded. */
  yields = 0;

  // 1 ms: with the reconcile pass, sweeps, a scrape and the controller all running, a request
  // waits for the slice in progress, so the slice is kept short; shorter slices cost the jobs no
  // CPU worth measuring (bench/responsiveness.js).
  constructor(
    private readonly budgetMs = 1,
    /** The time this thread has waited for a core so far, in ms (host/thread-clock.ts); undefined: not measured. */
    private readonly waitClock?: () => number,
    /** The clock, in ms (tests give one of their own). */
    private readonly clock: () => number = monotonicMs,
  ) {
    this.sliceStarted = clock();
    this.waitedBefore = waitClock?.() ?? 0;
  }

  /**
   * Whether the current slice has used its budget. Hot loops ask this, and await `yield()` only
   * when it is true: an await per step costs microseconds, thousands of them a tick.
   */
  due(): boolean {
    return this.clock() - this.sliceStarted >= this.budgetMs;
  }

  /** Yields when the current slice has used its budget; otherwise returns at once. */
  async check(): Promise<void> {
    if (this.due()) await this.yield();
  }

  /** Ends the current slice now. */
  async yield(): Promise<void> {
    this.end();
    this.yields++;
    await yieldToLoop();
    this.start();
  }

  /**
   * Awaits something else (another job's read, a library's promise): the loop is free meanwhile,
   * so the slice ends here and a new one starts when the job resumes.
   */
  async wait<T>(p: Promise<T>): Promise<T> {
    this.end();
    try {
      return await p;
    } finally {
      // Resumed from an IO callback (the poll phase): wait for this job's turn like any yield.
      await yieldToLoop();
      this.start();
    }
  }

  /** Closes the current slice, so `longestMs` covers the whole job. */
  end(): void {
    const held = this.clock() - this.sliceStarted;
    if (held > this.longestMs) this.longestMs = held;
    if (this.waitClock) this.longestRunMs = Math.max(this.longestRunMs, held - (this.waitClock() - this.waitedBefore));
  }

  private start(): void {
    this.sliceStarted = this.clock();
    if (this.waitClock) this.waitedBefore = this.waitClock();
  }
}
