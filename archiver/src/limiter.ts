/**
 * Bounded concurrency with two priorities: work PostgreSQL is waiting for runs before work done
 * ahead of it.
 */
export class Limiter {
  private running = 0;
  private readonly urgent: (() => void)[] = [];
  private readonly background: (() => void)[] = [];

  constructor(private readonly concurrency: number) {}

  run<T>(task: () => Promise<T>, urgent = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.running++;
        task().then(resolve, reject).finally(() => {
          this.running--;
          const next = this.urgent.shift() ?? this.background.shift();
          if (next) next();
        });
      };
      if (this.running < this.concurrency) start();
      else (urgent ? this.urgent : this.background).push(start);
    });
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.urgent.length + this.background.length;
  }

  get active(): number {
    return this.running;
  }
}
