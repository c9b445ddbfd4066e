import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDependencyDescriptor } from './descriptor.js';
import { imageDocument } from './documents.js';
import { parseManifestText } from './manifests.js';
import { parseResource } from './parse.js';
import { checkReferences } from './references.js';
import type { BuilderSpec, BuildSpec, ImageSpec, ResourceOf } from './resources.js';

const one = (text: string) => parseManifestText(text, 'f.yaml')[0]!.resource;
const fails = (text: string, message: RegExp) =>
  assert.throws(
    () => parseManifestText(text, 'f.yaml'),
    (err: Error) => {
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    },
  );

test('kpack.io/v1alpha1 converts as kpack converts it: serviceAccount, cacheSize, bindings, and the annotations v1alpha2 fields were kept in', () => {
  const r = one(`apiVersion: kpack.io/v1alpha1
kind: Image
metadata:
  name: old
  annotations:
    kpack.io/cache.registry.tag: r/old-cache
    kpack.io/buildTimeout: "15"
    kpack.io/defaultProcess: worker
spec:
  tag: r/old
  builder: {kind: Builder, name: b}
  serviceAccount: sa
  cacheSize: 2G
  source: {git: {url: "https://git.example/old", revision: main}}
  build:
    bindings:
    - name: db
      metadataRef: {name: db-meta}
      secretRef: {name: db-secret}
`) as ResourceOf<'Image'>;
  assert.equal(r.spec.serviceAccountName, 'sa');
  assert.deepEqual(r.spec.cache, { registry: { tag: 'r/old-cache' } });
  assert.equal(r.spec.buildTimeoutMinutes, 15);
  assert.equal(r.spec.defaultProcess, 'worker');
  assert.deepEqual(r.spec.bindings, [{ name: 'db', metadata: 'db-meta', secret: 'db-secret' }]);
  assert.deepEqual(r.spec.builder, { kind: 'Builder', name: 'b', namespace: 'default' });
  const builder = one('apiVersion: kpack.io/v1alpha1\nkind: Builder\nmetadata: {name: b}\nspec:\n  tag: r/b\n  serviceAccount: sa\n  stack: {kind: ClusterStack, name: s}\n  store: {kind: ClusterStore, name: st}\n  order: [{group: [{id: x}]}]\n') as ResourceOf<'Builder'>;
  assert.deepEqual(builder.spec.serviceAccount, { namespace: 'default', name: 'sa' });
  assert.equal(builder.spec.lifecycle, 'default-lifecycle');
});

test("kpack's newer resources: ClusterBuildpack, Buildpack, ClusterLifecycle, order entries by kind, a Build by itself", () => {
  const docs = parseManifestText(
    `apiVersion: kpack.io/v1alpha2
kind: ClusterBuildpack
metadata: {name: java}
spec: {image: r/java, serviceAccountRef: {name: sa, namespace: kpack}}
---
apiVersion: kpack.io/v1alpha2
kind: Buildpack
metadata: {name: mine, namespace: team}
spec: {image: r/mine, serviceAccountName: sa}
---
apiVersion: kpack.io/v1alpha2
kind: ClusterLifecycle
metadata: {name: newer}
spec: {image: r/lifecycle}
---
apiVersion: kpack.io/v1alpha2
kind: Builder
metadata: {name: b, namespace: team}
spec:
  tag: r/b
  stack: {kind: ClusterStack, name: s}
  lifecycle: {kind: ClusterLifecycle, name: newer}
  additionalLabels: {team: blue}
  order:
  - group:
    - {name: mine, kind: Buildpack}
    - {name: java, kind: ClusterBuildpack, id: paketo/java, version: 1.2.3, optional: true}
---
apiVersion: kpack.io/v1alpha2
kind: Build
metadata: {name: once}
spec:
  tags: [r/once]
  builder: {image: r/builder}
  runImage: {image: r/run}
  activeDeadlineSeconds: 600
  source: {blob: {url: "https://blobs.example/app.tgz"}}
`,
    'f.yaml',
  ).map((p) => p.resource);
  assert.deepEqual(docs.map((r) => `${r.meta.kind}/${r.meta.namespace}/${r.meta.name}`), ['ClusterBuildpack//java', 'Buildpack/team/mine', 'ClusterLifecycle//newer', 'Builder/team/b', 'Build/default/once']);
  const b = docs[3]!.spec as BuilderSpec;
  assert.equal(b.store, undefined, 'the store is optional');
  assert.equal(b.lifecycle, 'newer');
  assert.deepEqual(b.additionalLabels, { team: 'blue' });
  assert.deepEqual(b.order[0]!.group, [{ kind: 'Buildpack', name: 'mine' }, { id: 'paketo/java', version: '1.2.3', optional: true, kind: 'ClusterBuildpack', name: 'java' }]);
  const build = docs[4]!.spec as BuildSpec;
  assert.deepEqual({ tags: build.tags, builder: build.builderImage, run: build.runImage, timeout: build.timeoutSeconds }, { tags: ['r/once'], builder: 'r/builder', run: 'r/run', timeout: 600 });
  assert.deepEqual(docs[0]!.spec, { image: 'r/java', serviceAccount: { name: 'sa', namespace: 'kpack' } });
});

test('Secrets of every kind kpack reads; values from data (base64) and stringData; keys, never values, in errors', () => {
  const s = one('apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  annotations: {kpack.io/docker: registry.example}\ntype: kubernetes.io/basic-auth\ndata: {username: bWU=}\nstringData: {password: s3cret-value}\n') as ResourceOf<'Secret'>;
  assert.deepEqual(s.spec.data, { username: 'me', password: 's3cret-value' });
  assert.deepEqual(s.spec.keys, ['password', 'username']);
  fails('apiVersion: v1\nkind: Secret\nmetadata: {name: k, annotations: {kpack.io/git: git@github.com}}\ntype: kubernetes.io/ssh-auth\nstringData: {known_hosts: x}\n', /\(Secret default\/k\): stringData: a kubernetes\.io\/ssh-auth Secret needs ssh-privatekey$/);
  fails('apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ntype: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: "not json s3cret"}\n', /data\.\.dockerconfigjson: is not JSON/);
  fails('apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ndata: {token: "not base64 !!"}\n', /data\.token: must be base64/);
  fails('apiVersion: v1\nkind: Secret\nmetadata: {name: k}\nstringData: {"..": x}\n', /stringData\.\.\.: is not a valid key/);
  assert.throws(
    () => parseManifestText('apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ntype: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: "not json s3cret"}\n', 'f.yaml'),
    (err: Error) => !err.message.includes('s3cret'),
  );
});

test('env from Secrets and ConfigMaps: a missing key or Secret is an error naming the field; optional ones are not; fieldRef is refused', () => {
  const image = (env: string) => `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  tag: r/app\n  builder: {kind: ClusterBuilder, name: b}\n  source: {registry: {image: r/src}}\n  build:\n    env:\n${env}`;
  const secret = 'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: t}\n';
  const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {level: debug}\n';
  const check = (env: string) => checkReferences(parseManifestText(`${secret}---\n${cm}---\n${image(env)}`, 'f.yaml').map((p) => p.resource)).errors;
  assert.deepEqual(check('    - {name: A, valueFrom: {secretKeyRef: {name: s, key: token}}}\n    - {name: B, valueFrom: {configMapKeyRef: {name: c, key: level}}}\n'), []);
  assert.deepEqual(check('    - {name: A, valueFrom: {secretKeyRef: {name: s, key: nope}}}\n'), ['Image default/app: spec.build.env[0].valueFrom.secretKeyRef: Secret default/s has no key "nope" (it has token)']);
  assert.deepEqual(check('    - {name: A, valueFrom: {secretKeyRef: {name: gone, key: k, optional: true}}}\n'), []);
  assert.deepEqual(check('    - {name: A, valueFrom: {configMapKeyRef: {name: gone, key: k}}}\n'), ['Image default/app: spec.build.env[0].valueFrom.configMapKeyRef: ConfigMap default/gone is not declared (or mark it optional: true)']);
  fails(image('    - {name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n'), /valueFrom: needs exactly one of secretKeyRef or configMapKeyRef \(fieldRef and resourceFieldRef describe a pod/);
  fails(image('    - {name: A, value: x, valueFrom: {secretKeyRef: {name: s, key: token}}}\n'), /has both value and valueFrom/);
  fails(image('    - {name: A, value: x}\n    - {name: A, value: y}\n'), /A is set twice/);
  const sa = 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\nsecrets: [{name: missing}]\n';
  assert.deepEqual(checkReferences(parseManifestText(sa, 'f.yaml').map((p) => p.resource)).errors, ['ServiceAccount default/sa: secrets[0].name: Secret default/missing is not declared']);
});

test('paths that would leave the source are refused: projectDescriptorPath and subPath with .., absolute ones', () => {
  const image = (extra: string) => `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  tag: r/app\n  builder: {kind: ClusterBuilder, name: b}\n  source: {registry: {image: r/src}}\n${extra}`;
  fails(image('  projectDescriptorPath: ../../etc/shadow\n'), /spec\.projectDescriptorPath: "\.\.\/\.\.\/etc\/shadow" must be a path inside the source/);
  fails(image('  projectDescriptorPath: /etc/project.toml\n'), /spec\.projectDescriptorPath/);
  assert.equal((one(image('  projectDescriptorPath: config/project.toml\n')).spec as ImageSpec).projectDescriptorPath, 'config/project.toml');
});

test('an Image document made from a resource parses back to the same resource', () => {
  const text = `apiVersion: kpack.io/v1alpha2
kind: Image
metadata: {name: app, namespace: team}
spec:
  tag: r/app:v1
  additionalTags: [r/app:stable]
  builder: {kind: Builder, name: b, namespace: other}
  serviceAccountName: sa
  source:
    git: {url: "git@git.example:team/app.git", revision: main, initializeSubmodules: true}
    subPath: web
  build:
    env:
    - {name: A, value: "multi\\nline"}
    - {name: B, valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}}
    services: [{kind: Secret, apiVersion: v1, name: db}]
    buildTimeout: 20
    creationTime: now
  cache: {registry: {tag: r/app-cache}}
  successBuildHistoryLimit: 3
  failedBuildHistoryLimit: 2
  imageTaggingStrategy: None
  defaultProcess: web
  projectDescriptorPath: web/project.toml
  cosign: {annotations: [{name: team, value: blue}]}
`;
  const r = one(text) as ResourceOf<'Image'>;
  const back = parseResource(imageDocument(r.meta, r.spec), 'doc').resource;
  assert.deepEqual(back, r);
});

test("kp's dependency descriptor: v1, v1alpha3 (one lifecycle) and v1alpha1 (stacks and stores); duplicates and missing defaults are one line", () => {
  const v1 = parseDependencyDescriptor('apiVersion: kp.kpack.io/v1\nkind: DependencyDescriptor\ndefaultClusterStack: s\nclusterStacks: [{name: s, buildImage: {image: r/b}, runImage: {image: r/r}}]\nclusterStores: [{name: st, sources: [{image: r/bp}]}]\nclusterBuildpacks: [{name: bp, image: r/one}]\n', 'd.yaml');
  assert.equal(v1.defaultClusterStack, 's');
  assert.deepEqual(v1.clusterBuildpacks, [{ name: 'bp', image: 'r/one' }]);
  const v3 = parseDependencyDescriptor('apiVersion: kp.kpack.io/v1alpha3\nkind: DependencyDescriptor\nlifecycle: {image: r/lifecycle}\n', 'd.yaml');
  assert.deepEqual(v3.clusterLifecycles, [{ name: 'default-lifecycle', image: 'r/lifecycle' }]);
  const v1a1 = parseDependencyDescriptor('apiVersion: kp.kpack.io/v1alpha1\nkind: DependencyDescriptor\ndefaultStack: s\nstacks: [{name: s, buildImage: {image: r/b}, runImage: {image: r/r}}]\nstores: [{name: st, sources: [{image: r/bp}]}]\nclusterBuilders: [{name: cb, stack: s, store: st, order: []}]\n', 'd.yaml');
  assert.deepEqual(v1a1.clusterBuilders, [{ name: 'cb', clusterStack: 's', clusterStore: 'st', order: [] }]);
  assert.throws(() => parseDependencyDescriptor('apiVersion: kp.kpack.io/v1\nkind: DependencyDescriptor\ndefaultClusterBuilder: nope\n', 'd.yaml'), /d\.yaml: defaultClusterBuilder: default cluster builder "nope" not found/);
  assert.throws(() => parseDependencyDescriptor('apiVersion: kp.kpack.io/v1\nkind: DependencyDescriptor\nclusterStores: [{name: a, sources: []}, {name: a, sources: []}]\n', 'd.yaml'), /duplicate store name "a"/);
  assert.throws(() => parseDependencyDescriptor('apiVersion: kp.kpack.io/v9\nkind: DependencyDescriptor\n', 'd.yaml'), /apiVersion "kp\.kpack\.io\/v9" is not/);
});

test('a resource declared twice is taken from its last declaration, with a warning', async () => {
  const { parseDocuments, documentsOf } = await import('./manifests.js');
  const doc = (revision: string) => `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app}\nspec:\n  tag: r/app\n  builder: {kind: ClusterBuilder, name: b}\n  source: {git: {url: "https://g/app", revision: ${revision}}}\n`;
  const { parsed, warnings } = parseDocuments(documentsOf(`${doc('one')}---\n${doc('two')}`, 'f.yaml'));
  assert.equal(parsed.length, 1);
  assert.equal((parsed[0]!.resource.spec as ImageSpec).source.git!.revision, 'two');
  assert.deepEqual(warnings, ['f.yaml (document 2): Image default/app is also declared in f.yaml (document 1); this later one is applied']);
});
