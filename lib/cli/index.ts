/**
 * The `pstal` command line: one module per subcommand under lib/cli/, loaded on demand so that
 * `pstal eval` never pays for loading the models. Each module exports
 * `main(argv: string[]): Promise<number>` (the exit code).
 */
import { CliError } from './args';
import { version } from './version';

export { version };

const COMMANDS: Record<string, string> = {
  synth: 'write a synthetic dataset in the standard layout',
  points: 'simulate point labels from full annotations (gt_full.json)',
  gt: 'ground truth (gt_full.json) from a point-label csv with start/stop frames (ActivityNet 1.3)',
  check: 'validate a dataset folder before training',
  eval: 'score detections against ground truth (mAP at tIoU thresholds)',
  train: 'train HR-Pro stage 1 or stage 2, or the TSPNet plug-in (--method tspnet)',
  run: 'stage 1, ranking, stage 2 and evaluation in one go (--method hrpro+tspnet: then TSPNet)',
  detect: 'detect actions in new videos with a trained model',
  serve: 'a trained model behind HTTP: POST a video\'s features, get its detections',
  test: "evaluate a run's best checkpoint on a dataset's test split",
  import: 'a PyTorch HR-Pro checkpoint (torch.save state dict) into a run folder',
  demo: 'synthesize a small dataset and run the whole pipeline',
  report: "one self-contained HTML page of a run: config, curves, AP tables, timelines",
  'pseudo-labels': "full pseudo labels (gt_full.json) of the training videos from a run's detections and the points",
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const rows = Object.entries(COMMANDS).map(([c, d]) => `  ${c.padEnd(width)} ${d}`);
  return `usage: pstal <command> [options]\n\ncommands:\n${rows.join('\n')}\n\nRun \`pstal <command> --help\` for a command's options and examples; \`pstal --version\` for the version.`;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    console.log(version());
    // the backends found (and the GPU), after the version line
    for (const line of (await import('../runtime/backend')).backendsReport()) console.log(line);
    return 0;
  }
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 1;
  }
  if (!Object.hasOwn(COMMANDS, cmd)) {
    console.error(`pstal: unknown command '${cmd}'\n\n${usage()}`);
    return 2;
  }
  try {
    // PSTAL_NUM_THREADS, PSTAL_GEMM...: a value the kernels would silently ignore is a usage error
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    (require('./options') as typeof import('./options')).checkEnvironment();
    // a command's module: its name with '-' as '_' (pseudo-labels: ./pseudo_labels)
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(`./${cmd.replace(/-/g, '_')}`) as { main(argv: string[]): Promise<number> };
    return await mod.main(rest);
  } catch (e) {
    if (e instanceof CliError) {
      console.error(`pstal ${cmd}: ${e.message}`);
      return 2;
    }
    console.error(`pstal ${cmd}: ${(e as Error).message}`);
    if (process.env.PSTAL_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}
