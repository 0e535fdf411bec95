/**
 * state.ts: a training run's resumable state in one safetensors file: the model's state dict,
 * the optimizer's moments under `optimizer.*`, and a JSON record (iteration counters, RNG streams,
 * best-so-far) in the metadata. Written atomically like every checkpoint (lib/io/safetensors).
 */
import { Module } from '../nn/module';
import { Adam } from '../nn/optim';
import { Tensor } from '../tensor/tensor';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';

export function saveTrainState(file: string, kind: string, model: Module, adam: Adam, state: object): void {
  const tensors = new Map<string, Tensor>(model.stateDict());
  for (const [k, t] of adam.stateTensors()) tensors.set(`optimizer.${k}`, t);
  saveSafetensors(file, tensors, { pstal: kind, state: JSON.stringify(state) });
}

/** Restores model and optimizer from `file` and returns the JSON record; `kind` must match. */
export function loadTrainState<S extends { adamStep: number }>(file: string, kind: string, model: Module, adam: Adam): S {
  const f = loadSafetensors(file);
  if (f.metadata.pstal !== kind) throw new Error(`${file}: not a ${kind} file (it says '${f.metadata.pstal ?? 'nothing'}')`);
  let state: S;
  try {
    state = JSON.parse(f.metadata.state) as S;
  } catch (e) {
    throw new Error(`${file}: the training state in its metadata is not JSON (${(e as Error).message}); a damaged file: train afresh without --resume`);
  }
  if (typeof state !== 'object' || state === null || !Number.isInteger(state.adamStep) || state.adamStep < 0)
    throw new Error(`${file}: the training state in its metadata lacks its counters (adamStep); a damaged file: train afresh without --resume`);
  try {
    model.loadStateDict(new Map([...f.tensors].filter(([k]) => !k.startsWith('optimizer.'))));
    adam.loadState(state.adamStep, new Map([...f.tensors].filter(([k]) => k.startsWith('optimizer.')).map(([k, t]) => [k.slice('optimizer.'.length), t])));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return state;
}
