#!/usr/bin/env python3
"""Parses the YAML under the given directories and checks the examples hang together.

For every SecretProviderClass: provider is `azure`, every parameter is a string (as the
CRD requires), `objects` is `array:` of YAML strings each describing one object with a
known objectType, and each secretObjects[].data[].objectName names a file the provider
writes. Every pod or deployment volume using the CSI driver, and every SecretSync (the Secrets
Store Sync Controller's), names a SecretProviderClass defined in the same directory, and a
SecretSync's data[].sourcePath names a file that class writes. Needs PyYAML; used by
charts/check.sh.
"""
import pathlib
import sys

import yaml

OBJECT_TYPES = {"secret", "key", "cert"}
DRIVER = "secrets-store.csi.k8s.io"


def spc_problems(spc):
    """Problems of one SecretProviderClass, as strings."""
    name = spc["metadata"]["name"]
    spec = spc.get("spec", {})
    problems = []
    if spec.get("provider") != "azure":
        problems.append(f"{name}: provider must be azure")
    params = spec.get("parameters", {})
    for key, value in params.items():
        if not isinstance(value, str):
            problems.append(f"{name}: parameter {key} must be a string (quote it)")
    files = set()
    try:
        array = yaml.safe_load(params.get("objects", "")) or {}
        items = array.get("array", [])
    except (yaml.YAMLError, AttributeError) as err:
        return problems + [f"{name}: objects is not `array:` YAML: {err}"]
    for index, item in enumerate(items):
        if not isinstance(item, str):
            problems.append(f"{name}: objects item {index} must be a `- |` string")
            continue
        obj = yaml.safe_load(item) or {}
        if obj.get("objectType") not in OBJECT_TYPES:
            problems.append(f"{name}: objects item {index}: objectType {obj.get('objectType')!r}")
        if not obj.get("objectName"):
            problems.append(f"{name}: objects item {index}: no objectName")
        files.add(obj.get("objectAlias") or obj.get("objectName"))
    for secret in spec.get("secretObjects", []):
        for data in secret.get("data", []):
            wanted = data.get("objectName")
            # With --write-cert-and-key-in-separate-files the provider adds .crt/.key files.
            base = wanted.rsplit(".", 1)[0] if wanted and wanted.endswith((".crt", ".key")) else wanted
            if wanted not in files and base not in files:
                problems.append(f"{name}: secretObjects {secret.get('secretName')}: no file {wanted}")
    return problems


def pod_spec(doc):
    """The pod spec of a Pod or of a workload's pod template, else None."""
    spec = doc.get("spec") or {}
    return spec if doc.get("kind") == "Pod" else (spec.get("template") or {}).get("spec")


def spc_files(spc):
    """The file names a SecretProviderClass's objects write (objectAlias, else objectName)."""
    try:
        items = (yaml.safe_load(spc.get("spec", {}).get("parameters", {}).get("objects", "")) or {}).get("array", [])
        objects = [yaml.safe_load(item) or {} for item in items if isinstance(item, str)]
    except (yaml.YAMLError, AttributeError):
        return set()
    return {o.get("objectAlias") or o.get("objectName") for o in objects if isinstance(o, dict)}


def check_dir(directory):
    problems, spcs, refs, files, syncs = [], set(), [], {}, []
    for path in sorted(pathlib.Path(directory).glob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as err:
            problems.append(f"{path}: {err}")
            continue
        for doc in docs:
            if doc.get("kind") == "SecretProviderClass":
                spcs.add(doc["metadata"]["name"])
                files[doc["metadata"]["name"]] = spc_files(doc)
                problems += [f"{path.name}: {p}" for p in spc_problems(doc)]
            if doc.get("kind") == "SecretSync":
                syncs.append((path.name, doc))
            for volume in (pod_spec(doc) or {}).get("volumes", []):
                csi = volume.get("csi") or {}
                if csi.get("driver") == DRIVER:
                    if csi.get("readOnly") is not True:
                        problems.append(f"{path.name}: volume {volume['name']} must be readOnly: true")
                    refs.append((path.name, (csi.get("volumeAttributes") or {}).get("secretProviderClass")))
    for file_name, spc in refs:
        if spc not in spcs:
            problems.append(f"{file_name}: SecretProviderClass {spc!r} is not defined in {directory}")
    for file_name, sync in syncs:
        name, spec = sync["metadata"]["name"], sync.get("spec") or {}
        spc = spec.get("secretProviderClassName")
        if spc not in spcs:
            problems.append(f"{file_name}: SecretSync {name}: SecretProviderClass {spc!r} is not defined in {directory}")
            continue
        if not spec.get("serviceAccountName"):
            problems.append(f"{file_name}: SecretSync {name}: no serviceAccountName")
        for data in (spec.get("secretObject") or {}).get("data", []):
            if data.get("sourcePath") not in files[spc]:
                problems.append(f"{file_name}: SecretSync {name}: sourcePath {data.get('sourcePath')!r} is no file of {spc}")
    return problems


def main(directories):
    problems = [p for d in directories for p in check_dir(d)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
