/**
 * dispose.ts: Symbol.dispose for the handles that hold native memory or threads (tensors, modules,
 * loaded models, the detector), so that `using model = loadHrPro(run)` frees them at the end of
 * the block (TypeScript 5.2+ `using`; explicit dispose() works everywhere). Node 18.18+ and 20+
 * define Symbol.dispose; on an older Node the registered symbol Node itself would use stands in.
 */
if (typeof (Symbol as { dispose?: symbol }).dispose !== 'symbol')
  Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('nodejs.dispose'), configurable: false, writable: false });
if (typeof (Symbol as { asyncDispose?: symbol }).asyncDispose !== 'symbol')
  Object.defineProperty(Symbol, 'asyncDispose', { value: Symbol.for('nodejs.asyncDispose'), configurable: false, writable: false });

/** The error for a handle used after dispose(), naming it. */
export function disposedError(what: string, op: string): Error {
  return new Error(`${op}: ${what} was disposed (dispose() frees it; load or create a new one)`);
}
