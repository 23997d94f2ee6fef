// Cooperative slicing for long periodic jobs: a job calls `check()` between small steps, and it
// gives the event loop back once it has held it for `budgetMs`, so an API request or a flex call
// that arrives meanwhile waits for one slice, not for the whole job.
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class TimeSlice {
  private sliceStarted = process.hrtime.bigint();
  /** The longest time the job held the loop without yielding, in ms. */
  longestMs = 0;
  /** How many times the job yielded. */
  yields = 0;

  constructor(private readonly budgetMs = 5) {}

  /**
   * Whether the current slice has used its budget. Hot loops ask this, and await `yield()` only
   * when it is true: an await per step costs microseconds, thousands of them a tick.
   */
  due(): boolean {
    return Number(process.hrtime.bigint() - this.sliceStarted) / 1e6 >= this.budgetMs;
  }

  /** Yields when the current slice has used its budget; otherwise returns at once. */
  async check(): Promise<void> {
    if (this.due()) await this.yield();
  }

  /** Ends the current slice now. */
  async yield(held = Number(process.hrtime.bigint() - this.sliceStarted) / 1e6): Promise<void> {
    if (held > this.longestMs) this.longestMs = held;
    this.yields++;
    await yieldToLoop();
    this.sliceStarted = process.hrtime.bigint();
  }

  /** Closes the last slice, so `longestMs` covers the whole job. */
  end(): void {
    const held = Number(process.hrtime.bigint() - this.sliceStarted) / 1e6;
    if (held > this.longestMs) this.longestMs = held;
  }
}
