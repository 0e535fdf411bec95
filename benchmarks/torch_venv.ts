/**
 * torch_venv.ts: `npm run bench -- --torch-venv DIR`: the PyTorch reference's Python, made once.
 *
 * DIR/bin/python is used as it is when it imports torch 2.13 with scipy, pandas and joblib. Otherwise
 * the venv is made: `python3 -m venv DIR`, then `DIR/bin/pip install torch==2.13.0+cpu numpy scipy
 * pandas joblib` (pip's configured indexes and find-links: local wheels where the machine has them).
 * When pip cannot install the scientific packages, the venv is made again over Debian's
 * /usr/bin/python3 with --system-site-packages (python3-scipy, -pandas, -joblib) and pip installs
 * torch alone into it: the venv's own site-packages come before the system's dist-packages on
 * sys.path, so its torch 2.13 is the one imported (checked: the version is asserted at the end).
 */
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';

export const TORCH_VERSION = '2.13.0+cpu';

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  process.stderr.write(`bench: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

const CHECK = `import torch, scipy, pandas, joblib, numpy; assert torch.__version__ == '${TORCH_VERSION}', torch.__version__; print(torch.__version__, torch.__file__)`;

/** DIR/bin/python with PyTorch 2.13 CPU, scipy, pandas and joblib, making the venv when needed. */
export function ensureTorchVenv(dir: string): string {
  const python = path.join(path.resolve(dir), 'bin', 'python');
  if (fs.existsSync(python) && run(python, ['-c', CHECK]).ok) return python;
  const attempts: { base: string; extra: string[]; packages: string[] }[] = [
    { base: 'python3', extra: [], packages: [`torch==${TORCH_VERSION}`, 'numpy', 'scipy', 'pandas', 'joblib'] },
    { base: '/usr/bin/python3', extra: ['--system-site-packages'], packages: [`torch==${TORCH_VERSION}`] },
  ];
  const why: string[] = [];
  for (const a of attempts) {
    fs.rmSync(dir, { recursive: true, force: true });
    const venv = run(a.base, ['-m', 'venv', ...a.extra, dir]);
    if (!venv.ok) {
      why.push(`${a.base} -m venv ${a.extra.join(' ')}: ${venv.out.trim().split('\n').pop()}`);
      continue;
    }
    const pip = run(path.join(dir, 'bin', 'pip'), ['install', ...a.packages]);
    if (!pip.ok) {
      why.push(`pip install ${a.packages.join(' ')}: ${pip.out.trim().split('\n').pop()}`);
      continue;
    }
    const check = run(python, ['-c', CHECK]);
    if (check.ok) {
      process.stderr.write(`bench: reference Python ${python}: torch ${check.out.trim()}\n`);
      return python;
    }
    why.push(`the check (${CHECK}): ${check.out.trim().split('\n').pop()}`);
  }
  throw new Error(`bench: --torch-venv ${dir}: PyTorch ${TORCH_VERSION} could not be installed:\n  - ${why.join('\n  - ')}`);
}
