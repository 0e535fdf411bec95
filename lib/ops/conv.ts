/**
 * conv.ts: conv1d over time on time-major activations. x [T, Cin], weight [Cout, Cin, k] (PyTorch's
 * layout, so checkpoints load as they are), bias [Cout] -> [T + 2 pad - k + 1, Cout].
 * Note: PyTorch's Conv1d input is [B, Cin, T]; ours is [T, Cin] (one video, channels last), which
 * is what every consumer (attention, the classifier) wants. Native: native/{ops,cpu,cuda}/conv.*.
 */
import { record } from '../tensor/autograd';
import { backend } from '../runtime/backend';
import { ADDED, Tensor, needsGrad, shapeStr } from '../tensor/tensor';
import { sameDevice } from './elementwise';

export function conv1d(x: Tensor, weight: Tensor, bias: Tensor | null, pad = 0): Tensor {
  sameDevice('conv1d', x, weight, ...(bias ? [bias] : []));
  if (x.ndim !== 2 || weight.ndim !== 3)
    throw new Error(`conv1d: expected x [T, Cin] and weight [Cout, Cin, k], received ${shapeStr(x.shape)} and ${shapeStr(weight.shape)}`);
  const [T, Cin] = x.shape;
  const [Cout, wCin, k] = weight.shape;
  if (wCin !== Cin) throw new Error(`conv1d: x has ${Cin} channels but weight ${shapeStr(weight.shape)} expects ${wCin}`);
  if (bias && bias.size !== Cout) throw new Error(`conv1d: bias ${shapeStr(bias.shape)} must have ${Cout} values`);
  const Tout = T + 2 * pad - k + 1;
  if (Tout < 0) throw new Error(`conv1d: kernel ${k} is longer than the padded input (T=${T}, pad=${pad})`);
  const B = backend(x.device);
  const out = Tensor.empty([Tout, Cout], x.device); // out, dx and dw are written whole
  B.conv1d_forward(out.buffer, x.buffer, weight.buffer, bias?.buffer ?? null, T, Cin, Cout, k, pad);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  // only the gradients some input needs: the first layer's input (the features) needs none, and its
  // dx is as costly as the forward (measured: 5 % of a D = 2048 training step)
  const [needX, needW, needB] = [needsGrad(x), needsGrad(weight), bias !== null && needsGrad(bias)];
  return record('conv1d', out, inputs, (g, into) => {
    // weight's and bias's gradients go straight into autograd's sums (their .grad) where offered
    const [accW, accB] = [needW && !!into?.[1], needB && !!into?.[2]];
    const dx = needX ? Tensor.empty(x.shape, x.device) : null;
    const dw = needW ? (accW ? into![1]! : Tensor.empty(weight.shape, x.device)) : null;
    const db = needB ? (accB ? into![2]! : Tensor.empty(bias!.shape, x.device)) : null;
    B.conv1d_backward(dx?.buffer ?? null, dw?.buffer ?? null, db?.buffer ?? null, g.buffer, x.buffer, weight.buffer, T, Cin, Cout, k, pad, accW, accB);
    const grads: (Tensor | typeof ADDED | null)[] = [dx, accW ? ADDED : dw, accB ? ADDED : db];
    return bias ? grads : grads.slice(0, 2);
  });
}
