// Validates the custom resources of a render's manifests (KEDA's, the
// Prometheus operator's) against the schema their npm models publish. Reads a JSON list
// of manifests on stdin; prints one line per invalid or unknown resource and
// exits 1 if there was any.
//
//   kubectl kustomize OVERLAY | python -c 'yaml to json' | node validate_custom_resources.mjs

import { readFileSync } from "node:fs";

const PACKAGES = {
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const manifests = JSON.parse(readFileSync(0, "utf8"));
let failures = 0;
for (const manifest of manifests) {
  const [group, version] = manifest.apiVersion.split("/");
  const name = `${manifest.kind} ${manifest.metadata?.name}`;
  const pkg = PACKAGES[group];
  if (!pkg) {
    console.log(`${name}: no published schema for the group ${group}`);
    failures++;
    continue;
  }
  let model;
  try {
    model = (await import(`${pkg}/${group}/${version}/${manifest.kind}`))[manifest.kind];
  } catch {
    console.log(`${name}: ${pkg} has no ${manifest.apiVersion} ${manifest.kind}`);
    failures++;
    continue;
  }
  try {
    new model(manifest).validate();
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failures++;
  }
}
process.exit(failures ? 1 : 0);
