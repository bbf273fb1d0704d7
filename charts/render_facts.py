#!/usr/bin/env python3
"""Prints the facts of a `helm template` render that an in-place upgrade depends on.

Reads the render on stdin and prints one fact per line, in a fixed order, so charts/check.sh
can match whole lines: each resource's kind and name, the DaemonSet's labels, selector
(`selector k=v,...`, the complete matchLabels), pod labels, ServiceAccount, dnsPolicy,
container name, image, arguments and ports, and the images the driver chart is given
(from the stub driver chart check.sh renders in place of the real one). Needs PyYAML.
"""
import sys

import yaml


def pairs(mapping):
    return ",".join(f"{k}={v}" for k, v in sorted((mapping or {}).items()))


def facts(docs):
    out = []
    for doc in docs:
        kind, meta = doc.get("kind"), doc.get("metadata") or {}
        out.append(f"{kind} {meta.get('name')}")
        if kind == "DaemonSet":
            spec = doc["spec"]
            pod = spec["template"]["spec"]
            out += [f"label {k}={v}" for k, v in sorted((meta.get("labels") or {}).items())]
            out.append(f"selector {pairs(spec['selector'].get('matchLabels'))}")
            labels = spec["template"]["metadata"].get("labels") or {}
            out += [f"pod-label {k}={v}" for k, v in sorted(labels.items())]
            out.append(f"serviceAccountName {pod.get('serviceAccountName', '(unset)')}")
            out.append(f"dnsPolicy {pod.get('dnsPolicy', '(unset)')}")
            for container in pod["containers"]:
                out.append(f"container {container['name']}")
                out.append(f"image {container['image']}")
                out += [f"arg {arg}" for arg in container.get("args", [])]
                out += [f"port {p.get('name')}={p['containerPort']}" for p in container.get("ports", [])]
                probe = (container.get("livenessProbe") or {}).get("httpGet") or {}
                out.append(f"liveness {probe.get('path')}:{probe.get('port')}")
        elif kind == "ConfigMap" and meta.get("name") == "stub-driver-images":
            out += [f"driver-image {k}={v}" for k, v in sorted(doc["data"].items())]
    return out


if __name__ == "__main__":
    print("\n".join(facts(d for d in yaml.safe_load_all(sys.stdin) if d)))
