/**
 * pipeline.ts: HR-Pro then the TSPNet plug-in as one call (what `pstal run --method hrpro+tspnet`
 * does): HR-Pro stage 1, the reliability ranking and stage 2 in RUN (runHrPro, unchanged), then
 * TSPNet trained on that run's base proposals (stage-2 detections by default) in RUN/tspnet.
 *
 *   RUN/                 the HR-Pro run folder, as `pstal run` writes it (config.json, stage{1,2}_*, proposals.json)
 *   RUN/tspnet/          the TSPNet run folder, as `pstal train --method tspnet --base RUN` writes it
 *                        (proposals_{train,test}.json, tspnet_config.json, tspnet_*), so that
 *                        `pstal detect --model RUN/tspnet` runs the HR-Pro base and the plug-in on new videos
 *
 * Resume (`resume`): each phase is skipped when it is complete and goes on from its last saved state
 * when it is not. Stage 1 and the ranking: skipped when RUN holds proposals.json and the best stage-1
 * checkpoint (runHrPro's rule). The HR-Pro part as a whole: skipped when RUN/tspnet holds both base
 * proposals files, which are written only after stage 2 finished, and both stages recorded the
 * settings and inputs given now (a difference is refused naming each field; a longer stage-1 or
 * stage-2 schedule makes the HR-Pro part go on). The base proposals: reused when the HR-Pro part
 * was skipped, made again when it ran. TSPNet training: resumed from
 * RUN/tspnet/tspnet_last.safetensors; a TSPNet state trained on other base proposals than the ones
 * made now (the HR-Pro part went on) is removed, saying so, and TSPNet starts again.
 */
import type { RunControl } from '../../train/control';
import * as path from 'path';
import * as fs from 'fs';
import type { Dataset } from '../../data';
import type { Device } from '../../runtime/backend';
import { lockRunFolder } from '../../util/lock';
import { hrproConfigs, hrproResumePlan, runHrPro, RunResult, stageContext } from '../hrpro/run';
import type { Stage1TrainConfig, Stage2TrainConfig } from '../hrpro/config';
import type { TspNetConfig } from './config';
import type { BaseStage } from './proposals';
import { tspnetPaths } from './checkpoint';
import { train, TspNetRunResult } from './run';

/** The sub-folder of an HR-Pro run folder that holds the chained TSPNet run. */
export const TSPNET_SUBFOLDER = 'tspnet';

export interface HrProTspNetOptions extends RunControl {
  dataset: Dataset;
  /** the HR-Pro run folder; TSPNet goes to `out/tspnet` */
  out: string;
  stage1?: Partial<Stage1TrainConfig>;
  stage2?: Partial<Stage2TrainConfig>;
  tspnet?: Partial<TspNetConfig>;
  /** which HR-Pro stage gives TSPNet its base proposals: 2 (stage-2 detections, default) or 1 (raw stage-1 candidates) */
  baseStage?: BaseStage;
}

export interface HrProTspNetResult {
  interrupted: boolean;
  /** the HR-Pro part's result; null when it was skipped on resume (already complete) */
  hrpro: RunResult | null;
  /** the TSPNet part's result; null when the run stopped before it */
  tspnet: TspNetRunResult | null;
  /** the TSPNet run folder (out/tspnet) */
  tspnetOut: string;
}

/** HR-Pro (stage 1, ranking, stage 2) in `out`, then TSPNet on its base proposals in `out/tspnet`. */
export async function runHrProTspNet(o: HrProTspNetOptions): Promise<HrProTspNetResult> {
  const log = o.log ?? ((s: string) => console.error(s));
  const tspOut = path.join(o.out, TSPNET_SUBFOLDER);
  const baseStage = o.baseStage ?? 2;
  if (baseStage !== 1 && baseStage !== 2) throw new Error(`runHrProTspNet: baseStage must be 1 or 2, received ${baseStage}`);
  const lock = lockRunFolder(o.out); // held across all phases (each training loop also takes its own folder)
  try {
    const files = tspnetPaths(tspOut);
    let hrpro: RunResult | null = null;
    const hrproDone = (): boolean => {
      // both stages finished with the settings and inputs given now (a difference is refused, naming each field)
      const { cfg1, cfg2 } = hrproConfigs({ dataset: o.dataset, out: o.out, stage1: o.stage1, stage2: o.stage2 });
      const plan = hrproResumePlan(o.out, stageContext(o.dataset, { out: o.out, device: o.device }), cfg1, cfg2);
      return plan.stage1 !== 'train' && plan.stage2 !== 'train';
    };
    if (o.resume && fs.existsSync(files.proposalsTrain) && fs.existsSync(files.proposalsTest) && hrproDone()) {
      log(`hrpro: done in ${o.out} (${TSPNET_SUBFOLDER}/ holds its base proposals); going on to TSPNet`);
    } else {
      // base proposals of an earlier (or a shorter) HR-Pro run are not reused: made again after it
      for (const f of [files.proposalsTrain, files.proposalsTest]) fs.rmSync(f, { force: true });
      hrpro = await runHrPro({ dataset: o.dataset, out: o.out, stage1: o.stage1, stage2: o.stage2, device: o.device, resume: o.resume, quiet: o.quiet, log, signal: o.signal });
      if (hrpro.interrupted) return { interrupted: true, hrpro, tspnet: null, tspnetOut: tspOut };
    }
    const seed = o.stage1?.seed;
    const exactIoU = o.stage1?.exactIoU;
    const cfg: Partial<TspNetConfig> = {
      ...(seed !== undefined && { seed }),
      ...(exactIoU !== undefined && { exactIoU }),
      ...(o.tspnet ?? {}),
    };
    log(`tspnet: base proposals from HR-Pro stage ${baseStage} of ${o.out} -> ${tspOut}`);
    const tsp = await train({ dataset: o.dataset, out: tspOut, base: o.out, baseStage, config: cfg, device: o.device, resume: o.resume, restartStale: true, quiet: o.quiet, log: o.log, signal: o.signal });
    return { interrupted: tsp.interrupted, hrpro, tspnet: tsp, tspnetOut: tspOut };
  } finally {
    lock.release();
  }
}
