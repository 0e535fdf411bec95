/**
 * optim.ts: Adam as torch.optim.Adam (L2 weight decay added to the gradient), updating the
 * parameters' native buffers in place (native/ops/optim.h; kernels native/cpu/optim.cc, native/cuda/optim.cu). Its state (moments, step) can be
 * saved and restored so an interrupted run resumes exactly.
 */
import { backend } from '../runtime/backend';
import { Tensor } from '../tensor/tensor';
import { zeroGrad } from '../tensor/autograd';
import { Parameter } from './module';

export interface AdamOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class Adam {
  readonly lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  stepCount = 0;
  private m: Tensor[];
  private v: Tensor[];

  constructor(readonly params: Parameter[], options: AdamOptions) {
    this.lr = options.lr;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    if (!(this.lr > 0)) throw new Error(`Adam: lr must be positive, received ${this.lr}`);
    this.m = params.map((p) => Tensor.zeros(p.shape, p.device).keep());
    this.v = params.map((p) => Tensor.zeros(p.shape, p.device).keep());
  }

  /** One update from the accumulated gradients (parameters without a gradient are skipped). */
  step(): void {
    this.stepCount++;
    // one native call a device for every parameter with a gradient (adam_step_many: each
    // parameter's adam_step in turn)
    for (const device of new Set(this.params.map((p) => p.device))) {
      const sizes: number[] = [];
      const buffers: unknown[] = [];
      this.params.forEach((p, i) => {
        if (!p.grad || p.device !== device) return;
        sizes.push(p.size);
        buffers.push(p.buffer, p.grad.buffer, this.m[i].buffer, this.v[i].buffer);
      });
      if (sizes.length)
        backend(device).adam_step_many(sizes, this.lr, this.betas[0], this.betas[1], this.eps, this.weightDecay, this.stepCount, ...buffers);
    }
  }

  zeroGrad(): void {
    zeroGrad(this.params);
  }

  /** Moments by parameter index, for checkpoints. */
  stateTensors(): Map<string, Tensor> {
    const s = new Map<string, Tensor>();
    this.m.forEach((t, i) => s.set(`exp_avg.${i}`, t));
    this.v.forEach((t, i) => s.set(`exp_avg_sq.${i}`, t));
    return s;
  }

  loadState(step: number, tensors: Map<string, { data: Float32Array }>): void {
    this.m.forEach((t, i) => {
      const a = tensors.get(`exp_avg.${i}`);
      const b = tensors.get(`exp_avg_sq.${i}`);
      if (!a || !b || a.data.length !== t.size || b.data.length !== t.size)
        throw new Error(`Adam.loadState: optimizer state for parameter ${i} is missing or has the wrong size`);
      t.buffer.write(a.data);
      this.v[i].buffer.write(b.data);
    });
    this.stepCount = step;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
