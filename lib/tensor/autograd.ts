/**
 * autograd.ts: the tape's backward pass (micrograd's shape: a topological sort, then each node's
 * backward in reverse order). Gradients of intermediates are freed as soon as they have been
 * propagated; leaves that require grad accumulate into `t.grad`, so several backward passes may
 * run before one optimizer step (gradient accumulation).
 */
import { backend } from '../runtime/backend';
import { ADDED, BlockGrad, GradNode, Tensor, checkFinite, isDetectAnomaly, needsGrad, owned, shapeStr, tidy } from './tensor';

/** Attaches a backward rule to `out` when any input needs a gradient; checks for NaN/Inf. */
export function record(op: string, out: Tensor, inputs: Tensor[], backward: GradNode['backward']): Tensor {
  checkFinite(op, out, inputs);
  if (inputs.some(needsGrad)) out.node = { op, inputs, backward };
  return out;
}

/** Adds `src` into `dst` in place. */
export function accumulate(dst: Tensor, src: Tensor): void {
  backend(dst.device).axpy(dst.buffer, src.buffer, dst.size, 1);
}

/**
 * Backpropagates from a scalar `loss` (or from `loss` with an explicit `grad` of its shape),
 * accumulating into the `.grad` of every leaf that requires grad.
 */
export function backward(loss: Tensor, grad?: Tensor): void {
  if (!grad && loss.size !== 1)
    throw new Error(`backward: loss must be a scalar, received ${shapeStr(loss.shape)}; pass an explicit gradient`);
  if (grad && grad.size !== loss.size) throw new Error(`backward: gradient ${shapeStr(grad.shape)} does not match ${shapeStr(loss.shape)}`);
  // Topological order of the nodes reachable from loss.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[loss, false]];
  while (stack.length) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    if (t.node) for (const i of t.node.inputs) if (!seen.has(i) && (i.node || i.requiresGrad)) stack.push([i, false]);
  }
  // how many node inputs each tensor is: a leaf used once may take its gradient straight into .grad
  const uses = new Map<Tensor, number>();
  for (const t of order) if (t.node) for (const i of t.node.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  tidy(() => {
    const grads = new Map<Tensor, Tensor | BlockGrad>();
    /**
     * Where input i of t's node may have its gradient added in place (GradNode.backward's into):
     * the gradient summed so far for it (what addInto would add to), or, for a leaf with a .grad
     * that this pass reaches only through this input, that .grad (the one addition the leaf would
     * get). Never with anomaly detection (each gradient is checked alone), nor for an input that
     * appears twice in the node.
     */
    const sinks = (t: Tensor): (Tensor | null)[] | undefined => {
      if (isDetectAnomaly()) return undefined;
      const inputs = t.node!.inputs;
      return inputs.map((inp, i) => {
        if (!(inp.node || inp.requiresGrad) || inputs.indexOf(inp) !== i || inputs.lastIndexOf(inp) !== i) return null;
        const acc = grads.get(inp);
        if (acc) return isBlock(acc) ? null : acc;
        if (!inp.node && inp.grad && uses.get(inp) === 1) return inp.grad;
        return null;
      });
    };
    grads.set(loss, grad ? grad.detach() : Tensor.full(loss.shape, 1, loss.device));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const entry = grads.get(t);
      if (!entry) continue;
      grads.delete(t);
      if (!t.node) {
        if (!t.requiresGrad) release(entry);
        else if (t.grad) {
          addInto(t.grad, entry);
          release(entry);
        } else t.grad = materialize(entry, t).keep();
        continue;
      }
      const g = materialize(entry, t); // a node's backward takes its output's whole gradient
      const gs = t.node.backward(g, sinks(t));
      let gPassed = false;
      t.node.inputs.forEach((inp, i) => {
        const r = gs[i];
        if (!r || r === ADDED) return; // ADDED: already summed where it belongs
        let gi = r;
        if (!(inp.node || inp.requiresGrad)) {
          if (held(gi) !== g) release(gi); // (g itself is disposed below unless passed on)
          return;
        }
        if (!isBlock(gi) && gi.size !== inp.size)
          throw new Error(`backward of ${t.node!.op}: gradient ${shapeStr(gi.shape)} does not match input ${shapeStr(inp.shape)}`);
        if (isDetectAnomaly()) checkFinite(`backward of ${t.node!.op} (the gradient of its input ${i})`, held(gi), [g]);
        let acc = grads.get(inp);
        if (acc) {
          if (isBlock(acc)) grads.set(inp, (acc = materialize(acc, inp))); // a sum of two needs the whole tensor
          // g added into a sum needs no copy of its own, even when another input holds it; a block
          // of g that another input holds is made whole first, as it always was
          if (gPassed && isBlock(gi) && held(gi) === g) gi = materialize(gi, inp, false);
          addInto(acc, gi);
          if (held(gi) !== g) release(gi);
          return;
        }
        if (held(gi) === g) {
          // g goes to the first input that keeps it; another that keeps it gets a copy
          if (gPassed) gi = isBlock(gi) ? materialize(gi, inp, false) : g.detach();
          else gPassed = true;
        }
        grads.set(inp, gi);
      });
      if (!gPassed) g.dispose();
    }
  });
}

const isBlock = (x: Tensor | BlockGrad): x is BlockGrad => !(x instanceof Tensor);
/** the tensor a gradient holds */
const held = (x: Tensor | BlockGrad): Tensor => (isBlock(x) ? x.block : x);
const release = (x: Tensor | BlockGrad): void => held(x).dispose();

/** dst += x, the same additions as with x made whole (zeros outside a block add nothing). */
function addInto(dst: Tensor, x: Tensor | BlockGrad): void {
  if (isBlock(x)) x.addInto(dst, true);
  else accumulate(dst, x);
}

/** The gradient x as a tensor of `input`'s shape (a block: zeros around it); consumes x unless told not to. */
function materialize(x: Tensor | BlockGrad, input: Tensor, consume = true): Tensor {
  if (!isBlock(x)) return x;
  const whole = Tensor.zeros(input.shape, input.device);
  x.addInto(whole, false);
  if (consume) x.block.dispose();
  return whole;
}

/** Clears the accumulated gradients of these tensors (fills with zero, keeping the memory). */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) if (p.grad) p.grad.buffer.fill(0);
}

export { needsGrad };

/**
 * Values computed once from parameters and used by many backward passes (the videos of a batch,
 * each backpropagated alone): the passes see stand-in leaves, which gather the gradients; `flush()`
 * carries what they gathered back through the computation once, however many passes ran. Without
 * this each pass would walk back through the computation again (for composed projections, three
 * D x D x D GEMMs a pass). Under `noGrad` the leaves are the values and flush() has nothing to do.
 */
export class DeferredBackward<T extends Tensor[]> {
  /** stand-ins for the values, the same numbers, leaves of the passes' graphs */
  readonly leaves: T;
  private values: Tensor[];
  private tensors: Tensor[];

  /** `compute` builds the values; everything it creates lives until dispose(). */
  constructor(compute: () => T) {
    const { result, tensors } = owned(compute);
    this.values = result;
    this.tensors = tensors;
    this.leaves = result.map((v) => {
      if (!needsGrad(v)) return v;
      const leaf = v.detach().keep();
      leaf.requiresGrad = true;
      this.tensors.push(leaf);
      return leaf;
    }) as T;
  }

  /** Backpropagates the leaves' gathered gradients into the values' inputs and clears them. */
  flush(): void {
    this.leaves.forEach((leaf, i) => {
      if (leaf === this.values[i] || !leaf.grad) return;
      const g = leaf.grad;
      leaf.grad = null;
      backward(this.values[i], g);
      g.dispose();
    });
  }

  /** Frees the values, the leaves and the computation's intermediates (unflushed gradients are dropped). */
  dispose(): void {
    for (const t of this.tensors) {
      if (t.requiresGrad) t.grad?.dispose();
      t.dispose();
    }
    this.tensors = [];
  }
}
