/**
 * rab.ts: the Reliability-aware Attention Block (SPEC §2 step 2), post-norm:
 *   q = conv_query(x), k = conv_key(x), v = x (raw tokens)
 *   x = norm1(x + dropout1(MHA(q, k, v)))          MHA: 8 heads, attention dropout 0.1
 *   x = norm2(x + dropout2(linear2(dropout(relu(linear1(x))))))   D -> 128 -> D, dropout 0.3
 * conv_value exists (it is in the reference's state dict) but the forward pass does not use it.
 * The paper says GELU; the reference uses ReLU, and so do we.
 *
 * q and k are each two affine maps in a row (conv_query, kernel 1, then in_proj's q slice): given
 * `RabProjections`, each branch is one map composed from both (`composeAffine`), one GEMM of
 * [L, D] x [D, D] instead of two, the same function up to float rounding. The composition costs
 * D^3 per branch, so callers compose once for many videos (Stage1Model.composeProjections).
 *
 * `queryRows` (the last block: the encoder keeps only the snippets' rows, not the prototype
 * tokens' after them) computes only the first rows' outputs: their queries attend over all tokens'
 * keys and values, and the block's row-wise rest (residual, norms, FFN) runs on those rows alone.
 * The same bits as slicing the full output: every op is row-independent, the attention numbers its
 * dropout mask as for all rows, and the dropped rows' gradients were zeros at the ends of sums.
 */
import * as ops from '../../ops';
import { Affine, applyAffine, composeAffine, Conv1d, Dropout, LayerNorm, Linear, Module, MultiheadAttention } from '../../nn';
import { Tensor } from '../../tensor/tensor';
import { Rng } from '../../util/rng';
import { Device } from '../../runtime/backend';

export interface RabOptions {
  heads: number;
  feedForward: number;
  dropout: number;
  attentionDropout: number;
}

/**
 * A block's in-projections for many forward passes: q and k each composed into one affine map, v
 * the slice of in_proj (sliced once, not copied out of in_proj_weight by every pass).
 */
export interface RabProjections {
  query: Affine;
  key: Affine;
  value: Affine;
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

  /** conv_query then the q in-projection, conv_key then the k in-projection, composed, and v's (graph ops). */
  composedProjections(): RabProjections {
    return {
      query: composeAffine(this.conv_query.asAffine(), this.self_atten.inProjection('q')),
      key: composeAffine(this.conv_key.asAffine(), this.self_atten.inProjection('k')),
      value: this.self_atten.inProjection('v'),
    };
  }

  /**
   * x [L, D] -> [queryRows, D] (default all L); with `projections` (this block's, composed) q and k
   * take one GEMM each.
   */
  forward(x: Tensor, projections?: RabProjections, queryRows = x.shape[0]): Tensor {
    const att = this.self_atten;
    const xq = queryRows === x.shape[0] ? x : ops.slice(x, 0, 0, queryRows); // the query rows
    const q = projections ? applyAffine(xq, projections.query) : att.project(this.conv_query.forward(xq), 'q');
    const k = projections ? applyAffine(x, projections.key) : att.project(this.conv_key.forward(x), 'k');
    const v = projections ? applyAffine(x, projections.value) : att.project(x, 'v');
    // the residual adds take their dropout in the same call (Dropout.forwardAdd: the same bits)
    let h = this.norm1.forward(this.dropout1.forwardAdd(att.attend(q, k, v), xq));
    const ff = this.linear2.forward(this.linear1.forward(h, { relu: true, dropout: this.dropout })); // relu and dropout in linear1's call
    h = this.norm2.forward(this.dropout2.forwardAdd(ff, h));
    return h;
  }
}
