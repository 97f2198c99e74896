// One batch at a time across every model the server hosts. onnxruntime-node runs a session
// synchronously on the event loop, so two models' batches never truly run in parallel: they only
// interleave step by step, each taking twice as long, while requests for both pile up in smaller
// waves. Running whole batches one after another costs no throughput, halves the time each batch
// holds its requests, and lets every other model's queue fill up meanwhile, so its next batch is
// larger. Batchers that are due while the lane is busy wait their turn in arrival order and, when
// woken, take everything queued by then.

export interface LaneUser {
  /** Called when the lane has come free; the user tries to acquire it again if it still has work. */
  laneFree(): void;
}

export class ExecutionLane {
  private holder: LaneUser | undefined;
  private readonly waiting = new Set<LaneUser>();

  get busy(): boolean {
    return this.holder !== undefined;
  }

  /** Takes the lane if it is free; otherwise `user` is woken (laneFree) when its turn comes. */
  tryAcquire(user: LaneUser): boolean {
    if (this.holder === undefined) {
      this.waiting.delete(user);
      this.holder = user;
      return true;
    }
    if (this.holder !== user) this.waiting.add(user);
    return false;
  }

  /** Frees the lane and wakes waiters in arrival order until one of them takes it. */
  release(user: LaneUser): void {
    if (this.holder !== user) throw new Error('ExecutionLane: released by a user that does not hold it');
    this.holder = undefined;
    for (const next of [...this.waiting]) {
      if (this.holder !== undefined) break;
      this.waiting.delete(next);
      next.laneFree();
    }
  }
}
