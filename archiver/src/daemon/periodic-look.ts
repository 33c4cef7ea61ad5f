/**
 * The loop of the sidecar's watchers (the recovery-end watcher, the configuration reload, the role
 * label, the credential keeper): a look at once, then one every interval, never two at a time,
 * until stopped or until a look says the watch is over. The timer never keeps the process alive,
 * and `stop()` waits for a look in flight, so that a stopped watcher has no session half-used.
 */
export class PeriodicLook {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;

  /**
   * @param look one look; it must not throw (each watcher logs its own failures). It resolves to
   * `'done'` when the watch is over, anything else to look again.
   * @param intervalMs the time between the end of a look and the start of the next, or a function
   * of the look's outcome that gives it (a back-off while something fails).
   */
  constructor(
    private readonly look: () => Promise<unknown>,
    private readonly intervalMs: number | ((outcome: unknown) => number),
  ) {}

  start(): void {
    this.arm(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private arm(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.look().then((outcome) => {
        if (outcome !== 'done') this.arm(typeof this.intervalMs === 'function' ? this.intervalMs(outcome) : this.intervalMs);
      });
    }, delayMs);
    this.timer.unref?.();
  }
}
