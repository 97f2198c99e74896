// Keeps the weights that scored best on validation during a run (HF Trainer's
// load_best_model_at_end). RL on a small model moves in jumps — a step can tip the yes/no balance
// of thousands of answers — so the last step is not reliably the best one. The best weights live
// in `<run>/best/` as an ordinary checkpoint whose cursor holds the score, so a resumed run still
// knows what it has to beat.
import { join } from 'node:path';
import type { Weights } from '../engine/model/params.ts';
import { latestCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.ts';

export interface BestSoFar {
  step: number;
  score: number;
  weights: Weights;
}

export class BestCheckpoint {
  private constructor(
    private readonly dir: string,
    private current: BestSoFar | null,
  ) {}

  static async open(runDir: string): Promise<BestCheckpoint> {
    const dir = join(runDir, 'best');
    const ck = await latestCheckpoint(dir);
    const score = ck?.state.cursor.score;
    return new BestCheckpoint(dir, ck && typeof score === 'number' ? { step: ck.state.step, score, weights: ck.weights } : null);
  }

  get best(): BestSoFar | null {
    return this.current;
  }

  /** Records (and saves) the weights when `score` beats every earlier one; ties keep the earlier. */
  async consider(state: TrainerState, score: number, weights: Weights): Promise<boolean> {
    if (!Number.isFinite(score) || (this.current && score <= this.current.score)) return false;
    const copy: Weights = new Map([...weights].map(([k, v]) => [k, v.slice()]));
    await saveCheckpoint(this.dir, { ...state, cursor: { ...state.cursor, score } }, copy, null, 1);
    this.current = { step: state.step, score, weights: copy };
    return true;
  }
}
