/**
 * layers.ts: Linear, Conv1d, LayerNorm, Dropout and MultiheadAttention with PyTorch's parameter
 * names, shapes and default initialisation. Activations are time-major [L, D] (one video).
 */
import { Device } from '../runtime/backend';
import * as ops from '../ops';
import { Tensor } from '../tensor/tensor';
import { Rng } from '../util/rng';
import { kaimingUniformDefault, xavierUniform } from './init';
import { Module, Parameter } from './module';

/** An affine map x W^T + b, W [out, in], b [out]. */
export interface Affine {
  weight: Tensor;
  bias: Tensor;
}

/** x [..., in] -> x W^T + b [..., out] (one native call: ops.linear) */
export function applyAffine(x: Tensor, a: Affine): Tensor {
  return ops.linear(x, a.weight, a.bias);
}

/**
 * Two affine maps in a row, `inner` then `outer`, as one: W = W_o W_i, b = W_o b_i + b_o. Exact in
 * real arithmetic (float rounding differs from applying both); graph ops, so gradients reach all four.
 */
export function composeAffine(inner: Affine, outer: Affine): Affine {
  const [out, mid] = outer.weight.shape;
  if (inner.weight.shape[0] !== mid) throw new Error(`composeAffine: inner map gives ${inner.weight.shape[0]} values, outer takes ${mid}`);
  const weight = ops.matmul(outer.weight, inner.weight);
  const bias = ops.add(ops.matmul(outer.weight, inner.bias.reshape([mid, 1])).reshape([out]), outer.bias);
  return { weight, bias };
}

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | undefined;
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, options: { bias?: boolean; device?: Device } = {}) {
    super();
    this.weight = Parameter.create(kaimingUniformDefault(rng, outFeatures * inFeatures, inFeatures), [outFeatures, inFeatures], options.device);
    this.bias = options.bias === false ? undefined : Parameter.create(kaimingUniformDefault(rng, outFeatures, inFeatures), [outFeatures], options.device);
  }
  /**
   * x [..., in] -> [..., out]; options.relu: relu(x W^T + b), and options.dropout: a Dropout
   * module applied after it, both fused into the same call (the same values and seed draw as
   * dropout.forward(relu(linear(x))))
   */
  forward(x: Tensor, options: { relu?: boolean; dropout?: Dropout } = {}): Tensor {
    return ops.linear(x, this.weight, this.bias ?? null, { relu: options.relu, dropout: options.dropout?.mask() });
  }
}

export class Conv1d extends Module {
  weight: Parameter;
  bias: Parameter | undefined;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    rng: Rng,
    options: { padding?: number; bias?: boolean; device?: Device } = {},
  ) {
    super();
    const fanIn = inChannels * kernelSize;
    this.padding = options.padding ?? 0;
    this.weight = Parameter.create(kaimingUniformDefault(rng, outChannels * fanIn, fanIn), [outChannels, inChannels, kernelSize], options.device);
    this.bias = options.bias === false ? undefined : Parameter.create(kaimingUniformDefault(rng, outChannels, fanIn), [outChannels], options.device);
  }
  readonly padding: number;
  /** x [T, Cin] -> [T', Cout] */
  forward(x: Tensor): Tensor {
    return ops.conv1d(x, this.weight, this.bias ?? null, this.padding);
  }
  /** A kernel-1, unpadded, biased convolution as the affine map it is (graph views of the parameters). */
  asAffine(): Affine {
    if (this.kernelSize !== 1 || this.padding !== 0 || !this.bias) throw new Error('Conv1d.asAffine: only a kernel-1, unpadded convolution with a bias is an affine map of each row');
    return { weight: this.weight.reshape([this.outChannels, this.inChannels]), bias: this.bias };
  }
}

export class LayerNorm extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(readonly dim: number, readonly eps = 1e-5, device: Device = 'cpu') {
    super();
    this.weight = Parameter.create(new Float32Array(dim).fill(1), [dim], device);
    this.bias = Parameter.create(new Float32Array(dim), [dim], device);
  }
  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** ReLU as a module, so that layer lists number their entries as PyTorch's nn.Sequential does. */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return ops.relu(x);
  }
}

/** Dropout whose masks come from the module's own seeded generator. */
export class Dropout extends Module {
  constructor(readonly p: number, private readonly rng: Rng) {
    super();
    ops.checkDropoutP('Dropout', p);
  }
  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? ops.dropout(x, this.p, true, this.rng.seed()) : x;
  }
  /** The mask this forward pass would apply ({p, seed}: the seed drawn now), or null when it is the identity. */
  mask(): { p: number; seed: number } | null {
    return this.training && this.p > 0 ? { p: this.p, seed: this.rng.seed() } : null;
  }
  /** residual + forward(x), in one native call when training (ops.dropoutAdd; the same seed draw) */
  forwardAdd(x: Tensor, residual: Tensor): Tensor {
    return this.training && this.p > 0 ? ops.dropoutAdd(x, residual, this.p, true, this.rng.seed()) : ops.add(residual, x);
  }
}

/**
 * torch.nn.MultiheadAttention over one sequence: in_proj_weight [3D, D] and in_proj_bias [3D]
 * (q, k, v stacked), out_proj (Linear D -> D), dropout on the attention weights.
 */
export class MultiheadAttention extends Module {
  in_proj_weight: Parameter;
  in_proj_bias: Parameter;
  out_proj: Linear;
  constructor(readonly dim: number, readonly heads: number, readonly dropout: number, private readonly rng: Rng, device: Device = 'cpu') {
    super();
    if (dim % heads !== 0) throw new Error(`MultiheadAttention: ${heads} heads do not divide ${dim}`);
    this.in_proj_weight = Parameter.create(xavierUniform(rng, 3 * dim, dim), [3 * dim, dim], device);
    this.in_proj_bias = Parameter.create(new Float32Array(3 * dim), [3 * dim], device);
    this.out_proj = new Linear(dim, dim, rng, { device });
    this.out_proj.bias!.buffer.fill(0);
  }
  /** query, key, value [L, D] -> [L, D] */
  forward(query: Tensor, key: Tensor, value: Tensor): Tensor {
    return this.attend(this.project(query, 'q'), this.project(key, 'k'), this.project(value, 'v'));
  }
  /** The in-projection of q, k or v: x W^T + b with that slice of in_proj_weight / in_proj_bias. */
  project(x: Tensor, which: 'q' | 'k' | 'v'): Tensor {
    return applyAffine(x, this.inProjection(which));
  }
  /** The slices of in_proj_weight [D, D] and in_proj_bias [D] for q, k or v (graph ops: gradients reach the parameters). */
  inProjection(which: 'q' | 'k' | 'v'): Affine {
    const D = this.dim;
    const i = which === 'q' ? 0 : which === 'k' ? 1 : 2;
    return { weight: ops.slice(this.in_proj_weight, 0, i * D, (i + 1) * D), bias: ops.slice(this.in_proj_bias, 0, i * D, (i + 1) * D) };
  }
  /** Attention over projected q, k, v [L, D], then out_proj. */
  attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const p = this.training ? this.dropout : 0;
    const o = ops.scaledDotProductAttention(q, k, v, this.heads, p, p > 0 ? this.rng.seed() : 0);
    return this.out_proj.forward(o);
  }
}
