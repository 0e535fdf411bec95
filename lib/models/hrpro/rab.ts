/**
 * rab.ts: the Reliability-aware Attention Block (SPEC §2 step 2), post-norm:
 *   q = conv_query(x), k = conv_key(x), v = x (raw tokens)
 *   x = norm1(x + dropout1(MHA(q, k, v)))          MHA: 8 heads, attention dropout 0.1
 *   x = norm2(x + dropout2(linear2(dropout(relu(linear1(x))))))   D -> 128 -> D, dropout 0.3
 * conv_value exists (it is in the reference's state dict) but the forward pass does not use it.
 * The paper says GELU; the reference uses ReLU, and so do we.
 */
import * as ops from '../../ops';
import { Conv1d, Dropout, LayerNorm, Linear, Module, MultiheadAttention } from '../../nn';
import { Tensor } from '../../tensor/tensor';
import { Rng } from '../../util/rng';
import { Device } from '../../runtime/backend';

export interface RabOptions {
  heads: number;
  feedForward: number;
  dropout: number;
  attentionDropout: number;
}

export class ReliabilityAwareBlock extends Module {
  conv_query: Conv1d;
  conv_key: Conv1d;
  conv_value: Conv1d;
  self_atten: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;

  constructor(dim: number, o: RabOptions, rng: Rng, device: Device = 'cpu') {
    super();
    this.conv_query = new Conv1d(dim, dim, 1, rng, { device });
    this.conv_key = new Conv1d(dim, dim, 1, rng, { device });
    this.conv_value = new Conv1d(dim, dim, 1, rng, { device });
    this.self_atten = new MultiheadAttention(dim, o.heads, o.attentionDropout, rng, device);
    this.linear1 = new Linear(dim, o.feedForward, rng, { device });
    this.dropout = new Dropout(o.dropout, rng);
    this.linear2 = new Linear(o.feedForward, dim, rng, { device });
    this.norm1 = new LayerNorm(dim, 1e-5, device);
    this.norm2 = new LayerNorm(dim, 1e-5, device);
    this.dropout1 = new Dropout(o.dropout, rng);
    this.dropout2 = new Dropout(o.dropout, rng);
  }

  /** x [L, D] -> [L, D] */
  forward(x: Tensor): Tensor {
    const q = this.conv_query.forward(x);
    const k = this.conv_key.forward(x);
    let h = this.norm1.forward(ops.add(x, this.dropout1.forward(this.self_atten.forward(q, k, x))));
    const ff = this.linear2.forward(this.dropout.forward(ops.relu(this.linear1.forward(h))));
    h = this.norm2.forward(ops.add(h, this.dropout2.forward(ff)));
    return h;
  }
}
