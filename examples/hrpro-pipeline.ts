/**
 * What `pstal run` + `pstal detect` do, through the library API alone: data, HR-Pro stage 1,
 * reliability ranking, stage 2, evaluation, and detection on a video with a plot.
 *
 *   npx ts-node examples/hrpro-pipeline.ts [DATA_DIR] [RUN_DIR]
 *
 * Without DATA_DIR it synthesizes a small THUMOS-like dataset first (as `pstal demo`). In your own
 * project, import from 'pstal' instead of '../lib'.
 */
import * as fs from 'fs';
import * as path from 'path';
import { data, formats, hrpro, evaluation, plot } from '../lib';

async function main(): Promise<void> {
  const dataDir = process.argv[2] ?? path.join('pstal-example', 'data');
  const runDir = process.argv[3] ?? path.join('pstal-example', 'run');
  const dim = 64;

  // 1. data: the standard layout (SPEC §1); synthesized when there is none
  if (!fs.existsSync(path.join(dataDir, 'gt_full.json'))) {
    await data.synthesizeDataset({
      out: dataDir, dim, seed: 0, videos: 200,
      knobs: { durationScale: 0.3, noiseStd: 0.25, sceneStrength: 0.5, latentNoiseStrength: 0.15, classCorrelation: 0.2 },
    });
  }
  const config = data.loadConfig('thumos14', { featureDim: dim });
  const dataset = data.loadDataset(dataDir, config, { onWarning: (m) => console.warn(m) });
  console.log(`${dataset.train.length} training and ${dataset.test.length} test videos, ${dataset.classNames.length} classes`);

  // 2. stage 1 (SPEC §2) and the reliability ranking (SPEC §3) -> RUN/proposals.json
  const ctx = hrpro.stageContext(dataset, { out: runDir, quiet: true, log: () => undefined });
  const cfg1 = hrpro.stage1ConfigFrom(config, { iterations: 500, testEvery: 100, batchSize: 8, lr: 1e-3, seed: 0 });
  const s1 = await hrpro.trainStage1(ctx, cfg1);
  const ranked = hrpro.finishStage1(ctx, cfg1, s1.model);
  s1.model.dispose();
  console.log(`stage 1: best avg mAP ${(100 * s1.bestMap).toFixed(2)} at iteration ${s1.bestIteration}\n${ranked.table}`);

  // 3. stage 2 (SPEC §4) from the ranked proposals
  const cfg2 = hrpro.stage2ConfigFrom(config, { epochs: 15, testEvery: 5, lr: 1e-3, seed: 0 });
  const proposals = formats.readProposals(ranked.proposalsFile);
  const s2 = await hrpro.trainStage2({ ...ctx, proposals }, cfg2);
  s2.model.dispose();
  console.log(`stage 2: best avg mAP ${(100 * s2.bestMap).toFixed(2)} at epoch ${s2.bestEpoch}`);

  // 4. evaluation of the saved results file, as `pstal eval` does it (SPEC §6)
  const gt = evaluation.loadGroundTruth(dataset.gtFile, dataset.testSubset, { blockedVideos: config.blockedVideos });
  const results = evaluation.loadResults(path.join(runDir, 'stage2_results.json'));
  const scored = evaluation.evaluateDetection(gt, results, { tiou: config.tiou, checkUnknown: false });
  console.log(evaluation.formatMapTable(scored));

  // 5. detection on one video with both stages' best checkpoints, and its picture
  const model = hrpro.loadHrPro(runDir);
  const video = dataset.test[0];
  const found = hrpro.detect(model, { data: video.features, shape: [video.T, video.D] }, { name: video.name });
  for (const d of found.detections.slice(0, 5)) console.log(`${video.name}: ${d.label} ${d.segment[0].toFixed(1)}-${d.segment[1].toFixed(1)} s, score ${d.score.toFixed(3)}`);
  const files = plot.plotVideo(path.join(runDir, video.name), video.name, found, model.classNames, model.cfg1.secondsPerSnippet, video.gt);
  console.log(`plot: ${files.join(', ')}`);
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
