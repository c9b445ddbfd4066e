import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifestText } from './manifests.js';
import { checkReferences } from './references.js';
import { buildTags, type ImageSpec } from './resources.js';

/** A fleet as a kpack user writes it, with the Kubernetes-only fields kpack users have. */
const FLEET = `apiVersion: kpack.io/v1alpha2
kind: ClusterStack
metadata:
  name: base
spec:
  id: "io.buildpacks.stacks.bookworm"
  buildImage:
    image: "registry.example/base:build"
  runImage:
    image: "registry.example/base:run"
  serviceAccountRef:
    name: kpack
    namespace: kpack
---
apiVersion: kpack.io/v1alpha2
kind: ClusterStore
metadata:
  name: default
spec:
  sources:
  - image: registry.example/buildpacks/nodejs:1
---
apiVersion: kpack.io/v1alpha2
kind: ClusterBuilder
metadata:
  name: nodejs
spec:
  serviceAccountRef:
    name: default
    namespace: default
  tag: registry.example/builders/nodejs
  stack:
    name: base
    kind: ClusterStack
  store:
    name: default
    kind: ClusterStore
  order:
  - group:
    - id: strata/node-engine
    - id: strata/yarn-install
      optional: true
    - id: strata/procfile
---
apiVersion: kpack.io/v1alpha2
kind: Image
metadata:
  name: hello
  namespace: apps
spec:
  tag: registry.example/apps/hello
  serviceAccountName: builder-sa
  builder:
    name: nodejs
    kind: ClusterBuilder
  source:
    git:
      url: https://git.example/hello.git
      revision: main
    subPath: web
  build:
    env:
    - name: BP_NODE_VERSION
      value: "20"
    resources:
      limits:
        memory: 1G
  cache:
    registry:
      tag: registry.example/apps/hello-cache
  successBuildHistoryLimit: 5
`;

test('kpack resources parse as a kpack user wrote them; Kubernetes-only fields are ignored with one warning each', () => {
  const parsed = parseManifestText(FLEET, 'fleet.yaml');
  assert.deepEqual(parsed.map((p) => `${p.resource.meta.kind}/${p.resource.meta.namespace}/${p.resource.meta.name}`), ['ClusterStack//base', 'ClusterStore//default', 'ClusterBuilder//nodejs', 'Image/apps/hello']);
  const image = parsed[3]!.resource.spec as ImageSpec;
  assert.deepEqual(image.builder, { kind: 'ClusterBuilder', name: 'nodejs', namespace: '' });
  assert.deepEqual(image.source, { git: { url: 'https://git.example/hello.git', revision: 'main' }, subPath: 'web' });
  assert.deepEqual(image.env, [{ name: 'BP_NODE_VERSION', value: '20' }]);
  assert.equal(image.successBuildHistoryLimit, 5);
  assert.equal(image.failedBuildHistoryLimit, 10);
  assert.equal(image.imageTaggingStrategy, 'BuildNumber');
  assert.deepEqual(image.cache, { registry: { tag: 'registry.example/apps/hello-cache' } });
  assert.equal(image.serviceAccountName, 'builder-sa');
  assert.deepEqual(parsed.flatMap((p) => p.warnings), ['fleet.yaml (document 4) (Image apps/hello): ignored off Kubernetes: spec.build.resources']);
  const all = checkReferences(parsed.map((p) => p.resource));
  assert.deepEqual(all.errors, []);
  assert.deepEqual(all.waiting, ['ClusterStack base: spec.serviceAccountRef names ServiceAccount kpack/kpack, which is not declared; it waits for it', 'Image apps/hello: spec.serviceAccountName names ServiceAccount apps/builder-sa, which is not declared; it waits for it']);
  assert.deepEqual(checkReferences(parsed.slice(3).map((p) => p.resource)).waiting[0], 'Image apps/hello: spec.builder names ClusterBuilder nodejs, which is not declared; it waits for it');
});

const bad: [string, string, RegExp][] = [
  ['an unknown kind', 'apiVersion: kpack.io/v1alpha2\nkind: Pipeline\nmetadata: {name: x}\nspec: {}\n', /^f\.yaml: kind: unknown kind "Pipeline" \(strata fleet takes ClusterStack, ClusterStore, ClusterBuildpack, Buildpack, ClusterLifecycle, ClusterBuilder, Builder, Image, Build, Secret, ServiceAccount, ConfigMap\)$/],
  ['an API version kpack never had', 'apiVersion: kpack.io/v1beta9\nkind: Image\nmetadata: {name: x}\nspec: {}\n', /apiVersion: "kpack\.io\/v1beta9" is not kpack\.io\/v1alpha2 or kpack\.io\/v1alpha1/],
  ['a typo in a field', 'apiVersion: kpack.io/v1alpha2\nkind: ClusterStack\nmetadata: {name: s}\nspec:\n  id: x\n  buildImage: {image: a/b}\n  runImage: {image: a/c}\n  runImagee: {image: a/d}\n', /^f\.yaml \(ClusterStack s\): spec\.runImagee: unknown field \(expected id, buildImage, runImage, serviceAccountRef\)$/],
  ['a missing tag', 'apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  builder: {kind: ClusterBuilder, name: b}\n  source: {git: {url: u, revision: main}}\n', /^f\.yaml \(Image default\/app\): spec\.tag: is required$/],
  ['two sources', 'apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  tag: r/app\n  builder: {kind: ClusterBuilder, name: b}\n  source: {git: {url: u, revision: main}, registry: {image: r/src}}\n', /spec\.source: needs exactly one of git, blob or registry \(has git, registry\)/],
  ['a bad tag', 'apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  tag: "R/App:"\n  builder: {kind: ClusterBuilder, name: b}\n  source: {registry: {image: r/src}}\n', /spec\.tag: invalid image reference/],
  ['a number as an env value', 'apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  tag: r/app\n  builder: {kind: ClusterBuilder, name: b}\n  source: {registry: {image: r/src}}\n  build: {env: [{name: N, value: 20}]}\n', /spec\.build\.env\[0\]\.value: must be a string \(quote numbers/],
  ['a subPath leaving the source', 'apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  tag: r/app\n  builder: {kind: ClusterBuilder, name: b}\n  source: {git: {url: https://git.example/u, revision: main}, subPath: ../x}\n', /spec\.source\.subPath: "\.\.\/x" must be a path inside the source/],
  ['invalid YAML', 'kind: [\n', /^f\.yaml(:\d+)?: invalid YAML: /],
  ['a ClusterBuilder naming a namespaced Buildpack', 'apiVersion: kpack.io/v1alpha2\nkind: ClusterBuilder\nmetadata: {name: b}\nspec:\n  tag: r/b\n  stack: {kind: ClusterStack, name: s}\n  store: {kind: ClusterStore, name: s}\n  order: [{group: [{kind: Buildpack, name: x}]}]\n', /spec\.order\[0\]\.group\[0\]\.kind: "Buildpack" must be ClusterBuildpack \(a ClusterBuilder cannot use a namespaced Buildpack\)/],
];

for (const [what, text, message] of bad) {
  test(`kpack resources: ${what} is one line naming the file and field`, () => {
    assert.throws(() => parseManifestText(text, 'f.yaml'), (err: Error) => {
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
  });
}

test("BuildNumber tagging adds kpack's tag-b<N>.<date>.<time> (b<N>… for latest); None adds nothing", () => {
  const spec = { tag: '127.0.0.1:5000/apps/hello', imageTaggingStrategy: 'BuildNumber', additionalTags: ['127.0.0.1:5000/apps/hello:stable'] } as ImageSpec;
  const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  assert.deepEqual(buildTags(spec, 7, at), ['127.0.0.1:5000/apps/hello', '127.0.0.1:5000/apps/hello:b7.20260102.030405', '127.0.0.1:5000/apps/hello:stable']);
  assert.deepEqual(buildTags({ ...spec, tag: '127.0.0.1:5000/apps/hello:v2' }, 3, at)[1], '127.0.0.1:5000/apps/hello:v2-b3.20260102.030405');
  assert.deepEqual(buildTags({ ...spec, imageTaggingStrategy: 'None', additionalTags: [] }, 3), ['127.0.0.1:5000/apps/hello']);
});
