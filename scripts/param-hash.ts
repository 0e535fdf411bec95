/**
 * param-hash.ts: a short, fixed training run whose parameters are hashed, to show that a change
 * that should not alter the numbers does not: a small synthesized dataset, HR-Pro stage 1 for five
 * iterations, the ranking, one stage-2 epoch, then TSPNet for four iterations on the stage-2
 * detections. Prints one sha256 (first 16 hex digits) for each stage's best and last checkpoints'
 * tensors (names sorted, float32 bytes).
 *
 *   node -r ts-node/register/transpile-only scripts/param-hash.ts [--threads N] [--dir DIR]
 *
 * Run it on two commits (the same --threads) and compare the lines.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { data, hrpro, tspnet, loadSafetensors, native } from '../lib';

function hashOf(file: string): string {
  const st = loadSafetensors(file) as unknown as { tensors: Map<string, { data: Float32Array; shape: number[] }> };
  const h = crypto.createHash('sha256');
  for (const name of [...st.tensors.keys()].sort()) {
    const t = st.tensors.get(name)!;
    h.update(name);
    h.update(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex').slice(0, 16);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  native.setNumThreads(Number(opt('--threads') ?? 1));
  const dir = opt('--dir') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pstal-param-hash-'));
  const dataDir = path.join(dir, 'data');
  const runDir = path.join(dir, 'run');
  await data.synthesizeDataset({ out: dataDir, dim: 32, seed: 0, videos: 16, knobs: { durationScale: 0.2 } });
  const config = data.loadConfig('thumos14', { featureDim: 32 });
  const dataset = data.loadDataset(dataDir, config);
  const log = (): void => undefined;
  await hrpro.runHrPro({
    dataset, out: runDir, quiet: true, log,
    stage1: { iterations: 5, testEvery: 5, batchSize: 4, lr: 1e-3, seed: 0 },
    stage2: { epochs: 1, lr: 1e-3, seed: 0 },
  });
  await tspnet.train({
    dataset, out: path.join(runDir, 'tspnet'), base: runDir, baseStage: 2, quiet: true, log,
    config: { iterations: 4, testEvery: 4, batchSize: 4, lr: 1e-3, seed: 0 },
  });
  for (const f of ['stage1_best', 'stage1_last', 'stage2_best', 'stage2_last', 'tspnet/tspnet_best', 'tspnet/tspnet_last'])
    console.log(`${f.padEnd(20)} ${hashOf(path.join(runDir, `${f}.safetensors`))}`);
  if (!opt('--dir')) fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
