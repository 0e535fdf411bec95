/**
 * The TSPNet plug-in through the library API alone (what `pstal run --method hrpro+tspnet` and
 * `pstal detect --model RUN/tspnet` do): an HR-Pro base run, TSPNet trained on its stage-2
 * detections, the plug-in's test table, and detection on a video: from the HR-Pro base, and from
 * proposals given by hand (any base locator's).
 *
 *   npx ts-node examples/tspnet-plugin.ts [DATA_DIR] [RUN_DIR] [--quick]
 *
 * Without DATA_DIR it synthesizes a small THUMOS-like dataset first (as `pstal demo`); an HR-Pro run
 * already in RUN_DIR (stage2_best.safetensors) is used as it is. TSPNet goes to RUN_DIR/tspnet.
 * --quick: a few iterations of each part (a smoke test, not a result). In your own project, import
 * from 'pstal' instead of '../lib'.
 */
import * as fs from 'fs';
import * as path from 'path';
import { data, hrpro, tspnet, evaluation } from '../lib';

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => a !== '--quick');
  const quick = process.argv.includes('--quick');
  const dataDir = args[0] ?? path.join('pstal-example', 'data');
  const runDir = args[1] ?? path.join('pstal-example', 'run');
  const tspDir = path.join(runDir, 'tspnet');
  const dim = quick ? 16 : 64;

  // 1. data: the standard layout (SPEC §1); synthesized when there is none
  if (!fs.existsSync(path.join(dataDir, 'gt_full.json'))) {
    await data.synthesizeDataset({
      out: dataDir, dim, seed: 0, videos: quick ? 16 : 200,
      knobs: { durationScale: quick ? 0.2 : 0.3, noiseStd: 0.25, sceneStrength: 0.5, latentNoiseStrength: 0.15, classCorrelation: 0.2 },
    });
  }
  const featureDim = data.dataFeatureWidth(dataDir)!.dim;
  const config = data.loadConfig('thumos14', { featureDim });
  const dataset = data.loadDataset(dataDir, config, { onWarning: (m) => console.warn(m) });
  console.log(`${dataset.train.length} training and ${dataset.test.length} test videos, ${dataset.classNames.length} classes, D = ${featureDim}`);

  // 2. the base locator: HR-Pro stage 1, ranking, stage 2 (SPEC §2-§4), unless RUN_DIR has one
  if (!fs.existsSync(path.join(runDir, 'stage2_best.safetensors'))) {
    const base = await hrpro.runHrPro({
      dataset, out: runDir, quiet: true, log: () => undefined,
      stage1: quick ? { iterations: 2, testEvery: 2, batchSize: 4, lr: 1e-3 } : { iterations: 500, testEvery: 100, batchSize: 8, lr: 1e-3 },
      stage2: quick ? { epochs: 1, lr: 1e-3 } : { epochs: 15, testEvery: 5, lr: 1e-3 },
    });
    console.log(`HR-Pro: stage 2 best avg mAP ${(100 * base.stage2!.bestMap).toFixed(2)} at epoch ${base.stage2!.bestEpoch}`);
  }

  // 3. TSPNet (SPEC §5) on the base's stage-2 detections (written to RUN_DIR/tspnet/proposals_{train,test}.json)
  const r = await tspnet.train({
    dataset, out: tspDir, base: runDir, baseStage: 2, quiet: true, log: () => undefined,
    config: quick ? { iterations: 4, testEvery: 2, batchSize: 4, lr: 1e-3 } : { iterations: 1000, testEvery: 100, lr: 1e-4 },
  });
  console.log(`TSPNet: best avg mAP ${(100 * r.bestMap).toFixed(2)} at iteration ${r.bestIteration}\n${r.table}`);

  // 4. its saved results, scored as `pstal eval` does (SPEC §6)
  const gt = evaluation.loadGroundTruth(dataset.gtFile, dataset.testSubset, { blockedVideos: config.blockedVideos });
  const scored = evaluation.evaluateDetection(gt, evaluation.loadResults(path.join(tspDir, 'tspnet_results.json')), { tiou: config.tiou, checkUnknown: false });
  console.log(`tspnet_results.json: avg mAP(0.1:0.7) ${(100 * scored.map.reduce((s, x) => s + x, 0) / scored.map.length).toFixed(2)}`);

  // 5. a video through the trained plug-in: base proposals from the HR-Pro run it was trained on...
  const model = tspnet.loadTspNet(tspDir);
  const video = dataset.test[0];
  const found = tspnet.detect(model, { data: video.features, shape: [video.T, video.D] }, { name: video.name });
  console.log(`${video.name}: ${found.proposals} base proposals from HR-Pro, ${found.detections.length} detections`);
  for (const d of found.detections.slice(0, 3)) console.log(`  ${d.label} ${d.segment[0].toFixed(1)}-${d.segment[1].toFixed(1)} s, score ${d.score.toFixed(3)}`);
  // ...or from any base locator: segments in seconds (here: the test proposals the run was evaluated on)
  const given = (JSON.parse(fs.readFileSync(path.join(tspDir, 'proposals_test.json'), 'utf8')) as { results: Record<string, tspnet.BaseProposal[]> }).results[video.name];
  const fromFile = tspnet.detect(model, { data: video.features, shape: [video.T, video.D] }, { name: video.name, proposals: given });
  console.log(`${video.name}: ${fromFile.proposals} given proposals, ${fromFile.detections.length} detections`);
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
