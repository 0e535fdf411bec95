/**
 * `pstal import --from model.pkl --stage 1|2 --config thumos14 [--dim D] --out RUN`: a PyTorch HR-Pro
 * checkpoint (the reference's S_Model / I_Model state dict as torch.save writes it, or a safetensors
 * export) into a run folder: RUN/stage{1,2}_best.safetensors and the configuration the loaders read
 * (config.json / stage2_config.json), so `pstal test`, `pstal detect` and the library's loadHrPro
 * use it as if it had been trained here (lib/models/hrpro/import_checkpoint.ts).
 */
import { parseArgs, CliError, OptionSpec } from './args';
import { overLimit } from '../util/limits';
import { lockRunFolder } from '../util/lock';
import { importHrPro, classNamesOf } from '../models/hrpro/import_checkpoint';

export const IMPORT_OPTIONS: Record<string, OptionSpec> = {
  from: { type: 'string', describe: 'the checkpoint: torch.save(model.state_dict(), path) (torch >= 1.6), or a .safetensors export', required: true },
  stage: { type: 'number', describe: "which HR-Pro stage it holds: 1 (S_Model) or 2 (I_Model)", required: true },
  out: { type: 'string', describe: 'run folder to write (a stage already there stays; --force replaces the same stage)', required: true },
  config: { type: 'string', describe: 'dataset config the checkpoint was trained with: thumos14, gtea, beoid, activitynet13, or a YAML file', default: 'thumos14' },
  dim: { type: 'number', describe: "feature width D the checkpoint must have (default: the run's other stage, else the config's)" },
  data: { type: 'string', describe: "a dataset folder whose gt_full.json gives the class names (for configs without classNames)" },
  'prototype-tokens': { type: 'string', describe: "stage 1: 'reshape' (the reference's reshape of the memory, as a reference checkpoint was trained) or 'per-class'", default: 'reshape' },
  heads: { type: 'number', describe: 'stage 1: attention heads (the checkpoint does not record them)', default: 8 },
  force: { type: 'boolean', describe: "replace the stage's checkpoint in RUN, removing the files derived from the old one (stage 1: its ranking, a stage 2 trained here, RUN/tspnet; stage 2: RUN/tspnet on its detections)" },
};

export const IMPORT_ABOUT = `Reads the zip archive torch.save writes (float32/64/16 and bfloat16 tensors, any strides; a state
dict at the top or wrapped as {'state_dict': ...} / {'model': ...}), checks every name and shape
against our model (D and C from classifier.1.weight [C+1, D, 1] or bcr.prop_fusion.0.weight [D, 3D])
and the config, and writes RUN/stage1_best.safetensors + config.json or stage2_best.safetensors +
stage2_config.json.

examples:
  pstal import --from S_Model.pkl --stage 1 --config thumos14 --out runs/reference
  pstal import --from I_Model.pkl --stage 2 --out runs/reference
  pstal test --model runs/reference --data data/thumos14`;

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs('import', argv, IMPORT_OPTIONS, IMPORT_ABOUT);
  if (!a) return 0;
  if (a.stage !== 1 && a.stage !== 2) throw new CliError(`--stage must be 1 or 2, received ${a.stage}`);
  if (a.dim !== undefined && !(Number.isInteger(a.dim as number) && (a.dim as number) >= 1)) throw new CliError(`--dim must be a positive integer, received ${a.dim}`);
  const wide = a.dim !== undefined ? overLimit('featureDim', a.dim as number) : null;
  if (wide) throw new CliError(`--dim must be ${wide}, received ${a.dim}`);
  if (!(Number.isInteger(a.heads as number) && (a.heads as number) >= 1)) throw new CliError(`--heads must be a positive integer, received ${a.heads}`);
  const tokens = a['prototype-tokens'];
  if (tokens !== 'reshape' && tokens !== 'per-class') throw new CliError(`--prototype-tokens must be 'reshape' or 'per-class', received '${tokens}'`);
  const lock = lockRunFolder(a.out as string); // not while a training writes there (released at exit)
  if (lock.takenOver) console.error(`warning: ${lock.takenOver}`);
  const r = importHrPro({
    from: a.from as string,
    stage: a.stage,
    out: a.out as string,
    config: a.config as string,
    featureDim: a.dim as number | undefined,
    classNames: a.data ? classNamesOf(a.data as string) : undefined,
    prototypeReshape: tokens === 'reshape',
    heads: a.heads as number,
    force: Boolean(a.force),
  });
  const conv = Object.entries(r.converted);
  console.error(
    `stage ${r.stage}: ${r.tensors} tensors from ${a.from}${r.wrapper ? ` (under '${r.wrapper}')` : ''}, D = ${r.featureDim}` +
      (r.numClasses !== null ? `, ${r.numClasses} classes` : '') +
      (conv.length ? `; converted to float32: ${conv.map(([k, d]) => `${k} (${d})`).join(', ')}` : '') +
      `\nwrote ${r.file} and ${r.configFile}` +
      (r.removed.length ? `\nremoved (derived from the replaced checkpoint): ${r.removed.join(', ')}` : ''),
  );
  return 0;
}
