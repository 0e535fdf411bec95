/**
 * module.ts: Parameter and Module. A module's parameters, buffers and submodules are its fields;
 * their names, joined with '.', are PyTorch's state-dict names (arrays of modules are numbered:
 * `RAB.0.conv_query.weight`), so checkpoints exported from PyTorch load by name (SPEC §8).
 */
import { Device } from '../runtime/backend';
import { Tensor, Shape, shapeStr } from '../tensor/tensor';
import { backend } from '../runtime/backend';
import '../util/dispose';

/** A trainable leaf tensor, kept out of every scope. */
export class Parameter extends Tensor {
  static create(data: Float32Array, shape: Shape, device: Device = 'cpu'): Parameter {
    const t = Tensor.from(data, shape, device) as Parameter;
    Object.setPrototypeOf(t, Parameter.prototype);
    t.requiresGrad = true;
    t.keep();
    return t;
  }
}

/** A non-trained tensor that belongs to the state dict (running statistics, the prototype memory). */
export class Buffer {
  constructor(public tensor: Tensor) {
    tensor.keep();
  }
  /** Replaces the values (same shape), freeing the old storage. */
  set(t: Tensor): void {
    if (t.size !== this.tensor.size) throw new Error(`Buffer.set: ${shapeStr(t.shape)} does not match ${shapeStr(this.tensor.shape)}`);
    if (t.device === this.tensor.device) backend(t.device).copy(t.buffer, 0, this.tensor.buffer, 0, t.size);
    else this.tensor.buffer.write(t.toArray()); // across devices: through the host
  }
}

export abstract class Module {
  training = true;

  /** Named children in field order: parameters, buffers, modules (arrays of modules numbered). */
  private children(): [string, Parameter | Buffer | Module][] {
    const out: [string, Parameter | Buffer | Module][] = [];
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof Parameter || v instanceof Buffer || v instanceof Module) out.push([k, v]);
      else if (Array.isArray(v) && v.length && v.every((m) => m instanceof Module)) v.forEach((m, i) => out.push([`${k}.${i}`, m]));
    }
    return out;
  }

  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [k, v] of this.children()) {
      if (v instanceof Parameter) out.push([prefix + k, v]);
      else if (v instanceof Module) out.push(...v.namedParameters(`${prefix}${k}.`));
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = ''): [string, Buffer][] {
    const out: [string, Buffer][] = [];
    for (const [k, v] of this.children()) {
      if (v instanceof Buffer) out.push([prefix + k, v]);
      else if (v instanceof Module) out.push(...v.namedBuffers(`${prefix}${k}.`));
    }
    return out;
  }

  /** Every parameter and buffer by its PyTorch name. */
  stateDict(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const [k, p] of this.namedParameters()) m.set(k, p);
    for (const [k, b] of this.namedBuffers()) m.set(k, b.tensor);
    return m;
  }

  /**
   * Copies values in by name. strict: every name must be present on both sides with equal sizes;
   * the error lists every missing, unexpected and mismatched entry.
   */
  loadStateDict(state: Map<string, { shape: Shape; data: Float32Array }>, strict = true): void {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of own) {
      const s = state.get(k);
      if (s && s.data.length !== t.size) mismatched.push(`${k}: checkpoint ${shapeStr(s.shape)} vs model ${shapeStr(t.shape)}`);
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const parts = [];
      if (missing.length) parts.push(`missing from the checkpoint: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`not in the model: ${unexpected.join(', ')}`);
      if (mismatched.length) parts.push(`shape mismatch: ${mismatched.join('; ')}`);
      throw new Error(`loadStateDict: the checkpoint does not match the model\n  ${parts.join('\n  ')}`);
    }
    for (const [k, t] of own) {
      const s = state.get(k);
      if (s) t.buffer.write(s.data);
    }
  }

  train(mode = true): this {
    this.training = mode;
    for (const [, v] of this.children()) if (v instanceof Module) v.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  #disposed = false; // a private field: not one of the children Object.entries lists

  /** Whether dispose() was called: its parameters' tensors are freed, a forward pass throws. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** dispose(), for `using m = ...` (TypeScript 5.2+). */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Frees every parameter and buffer (and their gradients). */
  dispose(): void {
    this.#disposed = true;
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.dispose();
    }
    for (const [, b] of this.namedBuffers()) b.tensor.dispose();
  }
}
