/**
 * examples.ts: an example or two of every command, printed at the end of `pstal <command> --help`.
 */
export const EXAMPLES: Record<string, string[]> = {
  synth: [
    'pstal synth --annotations ../shared/data/GTEA --dim 32 --out data/gtea32        # real annotations, invented features',
    'pstal synth --out data/tiny --videos 20 --dim 16 --duration-scale 0.2           # everything invented, small',
  ],
  points: [
    'pstal points --gt data/mine/gt_full.json --out data/mine/point_labels/point_gaussian.csv --seed 0',
    'pstal points --gt gt_full.json --out points.csv --distribution uniform --subset Validation',
  ],
  gt: [
    'pstal gt --annotations ../shared/data/ActivityNet1.3 --out data/anet-annotations --holdout 0.25   # ActivityNet 1.3: gt from its point labels',
  ],
  check: [
    'pstal check --data data/mine --config gtea',
    'pstal check --data data/mine --dim 2048 --all                                     # every problem, not 20 of each kind',
  ],
  train: [
    'pstal train --stage 1 --data data/gtea32 --config gtea --out runs/g32 --iterations 200',
    'pstal train --stage 2 --data data/gtea32 --config gtea --out runs/g32 --epochs 5',
    'pstal train --method tspnet --data data/gtea32 --config gtea --base runs/g32 --base-stage 2 --out runs/g32-tsp',
    'pstal train --method tspnet --data data/thumos --proposals-train lacp_train.json --proposals-test lacp_test.json --out runs/lacp-tsp',
  ],
  run: [
    'pstal run --data data/gtea32 --config gtea --out runs/g32                         # --dim: the data\'s width',
    'pstal run --data data/gtea32 --config gtea --out runs/g32 --iterations 100 --test-every 50 --epochs 3 --lr 1e-3 --lr2 1e-3',
    'pstal run --method hrpro+tspnet --data data/gtea32 --config gtea --out runs/g32 --tspnet-iterations 500   # then TSPNet in runs/g32/tspnet',
    'pstal detect --model runs/g32/tspnet --features new.npy --out det.json          # the chain on new videos',
  ],
  detect: [
    'pstal detect --model runs/g32 --features data/gtea32/features/test/S1_Tea_C1.npy --out det.json --plot plots/',
    'pstal detect --model runs/g32-tsp --features new.npy --out det.json             # HR-Pro base + TSPNet plug-in',
  ],
  serve: [
    'pstal serve --model runs/g32                                   # http://127.0.0.1:8080: POST /v1/detect, GET / (a page to drop a .npy on)',
    'pstal serve --model runs/g32 --port 9000 --workers 2 --max-queue 16 --timeout 30',
  ],
  eval: [
    'pstal eval --gt data/gtea32/gt_full.json --pred runs/g32/stage2_results.json --subset validation --per-class',
  ],
  report: [
    'pstal report runs/g32 --out runs/g32/report.html                                # data folder as recorded by pstal run',
    'pstal report runs/g32 --data data/gtea32 --out report.html',
  ],
  demo: ['pstal demo --out pstal-demo'],
  'pseudo-labels': [
    'pstal pseudo-labels --model runs/t256 --data data/thumos14-d256 --out pseudo_gt.json --with-test-gt   # HR-Pro\'s detections',
    'pstal pseudo-labels --model runs/t256 --data data/thumos14-d256 --out pseudo_gt.json --method hrpro+tspnet --out-results pseudo_scored.json',
  ],
};
