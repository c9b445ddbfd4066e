import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { canonical } from './canonical.js';
import { kpackExport } from './documents.js';
import { parseManifestText } from './manifests.js';

const FLEET = `apiVersion: v1
kind: Secret
metadata: {name: git, annotations: {kpack.io/git: https://git.example}}
type: kubernetes.io/basic-auth
stringData: {username: u, password: planted-export-value-55}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder-sa, namespace: team}
secrets: [{name: git}]
imagePullSecrets: [{name: pull}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: binding-md, namespace: team}
data: {kind: mysql, provider: bitnami}
---
apiVersion: kpack.io/v1alpha2
kind: ClusterStack
metadata: {name: base}
spec:
  id: io.example.stack
  buildImage: {image: r.example/build}
  runImage: {image: r.example/run}
  serviceAccountRef: {name: builder-sa, namespace: team}
---
apiVersion: kpack.io/v1alpha2
kind: ClusterStore
metadata: {name: store}
spec:
  sources: [{image: r.example/bp/a}, {image: r.example/bp/b}]
---
apiVersion: kpack.io/v1alpha2
kind: ClusterBuildpack
metadata: {name: node}
spec: {image: r.example/bp/node, serviceAccountRef: {name: builder-sa, namespace: team}}
---
apiVersion: kpack.io/v1alpha2
kind: Buildpack
metadata: {name: java, namespace: team}
spec: {image: r.example/bp/java, serviceAccountName: builder-sa}
---
apiVersion: kpack.io/v1alpha2
kind: ClusterLifecycle
metadata: {name: lc}
spec: {image: r.example/lifecycle}
---
apiVersion: kpack.io/v1alpha2
kind: ClusterBuilder
metadata: {name: cb}
spec:
  tag: r.example/builders/cb
  stack: {kind: ClusterStack, name: base}
  store: {kind: ClusterStore, name: store}
  lifecycle: {kind: ClusterLifecycle, name: lc}
  order:
  - group: [{id: a/one, version: 1.0.0}, {kind: ClusterBuildpack, name: node, optional: true}]
  - group: [{image: r.example/bp/b}]
  additionalLabels: {team: payments}
---
apiVersion: kpack.io/v1alpha2
kind: Builder
metadata: {name: b, namespace: team}
spec:
  tag: r.example/builders/b
  serviceAccountName: builder-sa
  stack: {kind: ClusterStack, name: base}
  order:
  - group: [{kind: Buildpack, name: java}]
---
apiVersion: kpack.io/v1alpha2
kind: Image
metadata: {name: app, namespace: team}
spec:
  tag: r.example/apps/app
  additionalTags: [r.example/apps/app:stable]
  serviceAccountName: builder-sa
  builder: {kind: Builder, name: b}
  source:
    git: {url: https://git.example/app.git, revision: main}
    subPath: svc
  build:
    env:
    - {name: A, value: "1"}
    - name: T
      valueFrom: {secretKeyRef: {name: git, key: password}}
    services: [{kind: Secret, apiVersion: v1, name: git}]
    cnbBindings: [{name: db, metadataRef: {name: binding-md}, secretRef: {name: git}}]
    buildTimeout: 20
    creationTime: now
  cache: {registry: {tag: r.example/cache/app}}
  successBuildHistoryLimit: 3
  failedBuildHistoryLimit: 2
  imageTaggingStrategy: None
  defaultProcess: web
  projectDescriptorPath: svc/project.toml
  cosign: {annotations: [{name: team, value: payments}]}
---
apiVersion: kpack.io/v1alpha2
kind: Build
metadata: {name: once, namespace: team}
spec:
  tags: [r.example/apps/once]
  builder: {image: r.example/builders/cb@sha256:${'a'.repeat(64)}}
  serviceAccountName: builder-sa
  source: {blob: {url: https://blob.example/app.tgz, stripComponents: 1}}
  runImage: {image: r.example/run}
  cache: {registry: {tag: r.example/cache/once}}
  activeDeadlineSeconds: 600
`;

test('fleet export --kpack round-trips: every kind written as kpack declares it reads back to the same resources; Secrets only named', () => {
  const before = parseManifestText(FLEET, 'fleet.yaml').map((p) => p.resource);
  const text = kpackExport(before, (d) => stringify(d, { lineWidth: 0 }));
  assert.ok(!text.includes('planted-export-value-55'), 'no Secret value is written');
  assert.match(text, /^# +Secret default\/git \(kubernetes\.io\/basic-auth: password, username\)$/m);
  const after = parseManifestText(text, 'export.yaml').map((p) => p.resource);
  const key = (r: { meta: { kind: string; namespace: string; name: string } }) => `${r.meta.kind}/${r.meta.namespace}/${r.meta.name}`;
  const expected = before.filter((r) => r.meta.kind !== 'Secret').sort((a, b) => key(a).localeCompare(key(b)));
  assert.deepEqual(after.map(key).sort(), expected.map(key));
  const byKey = new Map(after.map((r) => [key(r), r]));
  for (const r of expected) assert.equal(canonical(byKey.get(key(r))!.spec), canonical(r.spec), `${key(r)} reads back the same`);
  // What others refer to comes first, as kubectl apply wants it.
  assert.ok(text.indexOf('kind: ServiceAccount') < text.indexOf('kind: ClusterStack'));
  assert.ok(text.indexOf('kind: ClusterBuilder') < text.indexOf('kind: Image'));
});
