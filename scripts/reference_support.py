"""
reference_support.py: what our scripts that run a reference implementation's own code (HR-Pro:
hrpro_reference.py, bench-reference-stage1.py; TSPNet: tspnet_reference.py) do alike, so that each
adapts the reference in one way only. Nothing of a reference is in this project: its files are read
at run time from a local clone, bare mirror or plain folder into a temporary folder.

  add_reference_argument(...) --reference, defaulting to an environment variable; without either, an
                              argparse error naming the variable to set
  read_file(repo, path)       a file of the reference: from a plain folder or work tree, else `git show HEAD:path`
  copy_files(repo, dest, ps)  those files into dest (folders made), named as in the reference or renamed
  git_commit(repo)            the commit a fixture records
  restore_numpy_aliases(dir)  np.int / np.float / np.bool (gone since numpy 1.24, used by HR-Pro's
                              evaluator) as the builtins they stood for, here and, through a
                              sitecustomize.py in dir put on PYTHONPATH, in joblib's worker processes
  stub_modules()              tqdm, termcolor, tensorboard_logger: progress bars, colours and logs are
                              not results (each stub has a module spec: torch 2.x asks
                              importlib.util.find_spec about optional modules such as tqdm)
"""
import importlib.machinery
import os
import subprocess
import sys
import types


def add_reference_argument(parser, env, project, *aliases):
    """Adds --reference (and `aliases`): a clone, bare mirror or plain folder of github.com/<project>,
    by default the first of the environment variables `env` that is set. Returns check(args), which
    returns args, or stops with parser.error naming what to set when no reference was given."""
    default = next((os.environ[n] for n in env if os.environ.get(n)), None)
    parser.add_argument('--reference', *aliases, dest='reference', default=default, metavar='DIR',
                        help=f'a clone, bare mirror or plain folder of github.com/{project} (default: '
                        + ', else '.join(f'${n}' for n in env) + ')')

    def check(args):
        if not args.reference:
            parser.error(f'no reference: set {env[0]} to a clone or bare mirror of github.com/{project} (or pass --reference DIR)')
        return args
    return check


def read_file(repo, path):
    """The text of a reference file, or None when the reference has no such file."""
    if os.path.isfile(os.path.join(repo, path)):
        with open(os.path.join(repo, path)) as fh:
            return fh.read()
    src = subprocess.run(['git', '-C', repo, 'show', f'HEAD:{path}'], capture_output=True, text=True)
    return src.stdout if src.returncode == 0 else None


def copy_files(repo, dest, paths, rename=lambda p: p, required=True):
    """Copies the reference's `paths` into dest as rename(path); a missing one is an error when required."""
    for p in paths:
        text = read_file(repo, p)
        if text is None:
            if required:
                raise SystemExit(f'{repo}: cannot read {p} (neither a file there nor in the git HEAD)')
            continue
        out = os.path.join(dest, rename(p))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, 'w') as fh:
            fh.write(text)


def git_commit(repo):
    return subprocess.run(['git', '-C', repo, 'rev-parse', 'HEAD'], check=True, capture_output=True, text=True).stdout.strip()


NUMPY_ALIASES = '''
import numpy as np
for name, builtin in (('int', int), ('float', float), ('bool', bool)):
    if name not in np.__dict__:
        setattr(np, name, builtin)
'''


def restore_numpy_aliases(tmp):
    exec(NUMPY_ALIASES, {})
    with open(os.path.join(tmp, 'sitecustomize.py'), 'w') as fh:
        fh.write(NUMPY_ALIASES)
    os.environ['PYTHONPATH'] = tmp + os.pathsep + os.environ.get('PYTHONPATH', '')


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


class _Tqdm:
    def __init__(self, it=None, *a, **k):
        self.it = it if it is not None else ()

    def __iter__(self):
        return iter(self.it)

    def __len__(self):
        return len(self.it)

    def set_description(self, *a, **k):
        pass

    def update(self, *a, **k):
        pass

    def close(self):
        pass


class _Logger:
    def __init__(self, *a, **k):
        pass

    def log_value(self, *a, **k):
        pass


def stub_modules():
    sys.modules['tqdm'] = _module('tqdm', tqdm=_Tqdm)
    sys.modules['termcolor'] = _module('termcolor', colored=lambda text, *a, **k: text)
    sys.modules['tensorboard_logger'] = _module('tensorboard_logger', Logger=_Logger)
