import { copyImage } from '../src/oci/copy.js';
import { RegistryClient } from '../src/oci/registry/client.js';
import { documentsOf } from '../src/fleet/manifests.js';
import type { LocalFleet } from '../src/fleet/service.js';
import type { BuildRecord } from '../src/fleet/store.js';

/**
 * Twins of one built app, for fleets of hundreds of images without hundreds of builds: each its own Image resource
 * with the app's source, the app's image mounted into its own repository, and a first build on record as if it had
 * built it. The fleet then starts as one whose images have all been built.
 */
export async function addTwins(fleet: LocalFleet, registry: string, first: BuildRecord, repository: string, names: string[], gitUrl: string): Promise<void> {
  const digest = first.result!.digest!;
  const client = new RegistryClient(registry);
  for (const name of names) await copyImage(client.repository(repository), digest, client.repository(`apps/${name}`), 'latest');
  const yaml = names.map((name) => `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: ${name}}\nspec:\n  tag: ${registry}/apps/${name}\n  imageTaggingStrategy: None\n  builder: {kind: ClusterBuilder, name: builder}\n  source:\n    git: {url: "${gitUrl}", revision: main}\n`).join('---\n');
  await fleet.apply(documentsOf(yaml, 'twins.yaml'));
  for (const name of names) {
    const b = (await fleet.store.createBuild({ namespace: 'default', image: name, kind: 'build', reasons: 'CONFIG', changes: first.changes, inputs: first.inputs, priority: 2 }, () => [`${registry}/apps/${name}`]))!;
    await fleet.store.claim('bench', ['build'], 60_000);
    await fleet.store.finish(b, 'bench', 'succeeded', { result: { image: `${registry}/apps/${name}@${digest}`, digest, usedBuildpacks: first.result!.usedBuildpacks ?? [] } });
  }
}
