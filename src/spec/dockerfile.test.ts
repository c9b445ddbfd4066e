import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseRunImage, hasInstructions, parseDockerfile } from './dockerfile.js';

const run = (text: string) => parseDockerfile(text, 'x run.Dockerfile', 'run');
const build = (text: string) => parseDockerfile(text, 'x build.Dockerfile', 'build');

test('an extension Dockerfile: one FROM, the allowed instructions, continuations and comments', () => {
  const d = build('# installs curl\nARG base_image\nFROM ${base_image}\nUSER root\nRUN apt-get update && \\\n    # a comment inside\n    apt-get install -y curl\nARG user_id\nUSER ${user_id}\nCOPY ["a b", "/c"]\n');
  assert.equal(d.from, '${base_image}');
  assert.ok(d.extendsBase);
  assert.deepEqual(d.instructions.map((x) => `${x.keyword}@${x.line}`), ['ARG@2', 'FROM@3', 'USER@4', 'RUN@5', 'ARG@8', 'USER@9', 'COPY@10']);
  assert.equal(d.instructions[3]!.args, 'apt-get update &&     apt-get install -y curl');
  assert.deepEqual(d.instructions[6]!.json, ['a b', '/c']);
  assert.ok(hasInstructions(d));
  assert.ok(!hasInstructions(run('FROM registry.example/run:tiny\n')));
  assert.ok(!run('FROM registry.example/run:tiny').extendsBase);
});

test('what the spec does not allow is refused with the file and line', () => {
  const cases: [() => unknown, RegExp][] = [
    [() => build('ARG base_image\nFROM ${base_image}\nCMD ["x"]\n'), /build\.Dockerfile:3: CMD is not allowed/],
    [() => build('ARG base_image\nFROM ${base_image}\nEXPOSE 80\n'), /:3: EXPOSE is not allowed/],
    [() => build('FROM debian\n'), /:1: a build\.Dockerfile must be FROM \$\{base_image\}, not debian/],
    [() => build('FROM ${base_image}\n'), /:1: FROM \$\{base_image\} needs ARG base_image before it/],
    [() => run('ARG base_image\nFROM ${base_image}\nFROM other\n'), /2 FROM instructions/],
    [() => run('RUN x\n'), /no FROM instruction/],
    [() => run('ENV A=1\nFROM x\n'), /:1: ENV before FROM/],
    [() => run('FROM a AS b\n'), /:1: FROM takes one image here/],
    [() => run('FROM ${other}\n'), /the only variable FROM may name is base_image/],
    [() => run('FROM x\n!!!\n'), /:2: not an instruction/],
    [() => run('FROM x\nRUN\n'), /:2: RUN needs arguments/],
  ];
  for (const [f, want] of cases) assert.throws(f, want);
});

test('the run image: the last switch wins and what came before it is moot; instructions from it on extend', () => {
  const base = run('ARG base_image\nFROM ${base_image}\n');
  const curl = run('ARG base_image\nFROM ${base_image}\nRUN echo curl\n');
  const tiny = run('FROM reg/run:tiny\n');
  const tinyPlus = run('FROM reg/run:tiny\nLABEL a=b\n');
  assert.deepEqual(chooseRunImage([]), { extend: false, ignored: [] });
  assert.deepEqual(chooseRunImage([base]), { extend: false, ignored: [] });
  assert.deepEqual(chooseRunImage([curl]), { extend: true, ignored: [] });
  assert.deepEqual(chooseRunImage([tiny]), { image: 'reg/run:tiny', extend: false, ignored: [] });
  assert.deepEqual(chooseRunImage([curl, tiny]), { image: 'reg/run:tiny', extend: false, ignored: [0] });
  assert.deepEqual(chooseRunImage([tiny, curl]), { image: 'reg/run:tiny', extend: true, ignored: [] });
  assert.deepEqual(chooseRunImage([curl, base, tinyPlus]), { image: 'reg/run:tiny', extend: true, ignored: [0, 1] });
});
