/**
 * The addon's exports are declared once, in lib/runtime/native.ts: NativeOps (both addons) and
 * CudaOps (what the CUDA addon adds). The declared names are read from that file with the
 * TypeScript compiler and compared, both ways, with what the CPU addon registers at load time, and
 * CudaOps with the ops registered in native/ops/*.cu (and with the CUDA addon itself where it loads).
 */
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { cpu } from '../../lib/runtime/native';
import { cudaAvailable, cuda } from '../../lib/runtime/backend';

const ROOT = path.resolve(__dirname, '..', '..');

/** The member names of an interface declared in lib/runtime/native.ts. */
function declared(name: string): string[] {
  const file = path.join(ROOT, 'lib', 'runtime', 'native.ts');
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const decl = sf.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name);
  if (!decl) throw new Error(`lib/runtime/native.ts declares no interface ${name}`);
  return decl.members.map((m) => (m.name && ts.isIdentifier(m.name) ? m.name.text : '?')).sort();
}

const diff = (a: string[], b: string[]): string[] => a.filter((x) => !b.includes(x));

test('NativeOps declares exactly what the CPU addon exports', (t) => {
  const names = declared('NativeOps');
  const exported = Object.keys(cpu()).sort();
  t.deepEqual(diff(exported, names), [], 'exported by the addon but not declared in NativeOps');
  t.deepEqual(diff(names, exported), [], 'declared in NativeOps but not exported by the addon');
  t.true(names.length > 40);
});

test('CudaOps declares exactly the ops native/ops/*.cu registers (and the CUDA addon exports, where it loads)', (t) => {
  const names = declared('CudaOps');
  const dir = path.join(ROOT, 'native', 'ops');
  const registered = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cu'))
    .flatMap((f) => [...fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/^PSTAL_OP\((\w+)\)/gm)].map((m) => m[1]))
    .sort();
  t.deepEqual(names, registered);
  if (cudaAvailable()) t.deepEqual(Object.keys(cuda()).sort(), [...declared('NativeOps'), ...names].sort());
});
