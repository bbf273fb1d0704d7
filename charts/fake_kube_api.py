#!/usr/bin/env python3
"""A Kubernetes API server just big enough for `helm template --dry-run=server`'s lookups.

Used by charts/check.sh to test the chart's upgrade guard (templates/validate.yaml), which
only acts when Helm can see the cluster. Serves, on 127.0.0.1 only, /version, the discovery
documents for v1 and apps/v1, an empty Secret list (Helm's release storage) and, for every
namespace, the DaemonSets listed in a JSON file (re-read at each request, so one server
serves several cases). Prints the port it listens on, then serves until killed.

Usage: fake_kube_api.py DAEMONSETS.json
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def resource(name, kind):
    return {"name": name, "singularName": "", "namespaced": True, "kind": kind, "verbs": ["get", "list"]}


def document(path, daemonsets_file):
    """The JSON body for a GET of path, or None (404)."""
    if path == "/version":
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": "apps", "versions": [version], "preferredVersion": version}]}
    if path == "/api/v1":
        return {"kind": "APIResourceList", "groupVersion": "v1",
                "resources": [resource("secrets", "Secret"), resource("serviceaccounts", "ServiceAccount"),
                              resource("configmaps", "ConfigMap")]}
    if path == "/apis/apps/v1":
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                "resources": [resource("daemonsets", "DaemonSet")]}
    parts = path.strip("/").split("/")
    if len(parts) == 6 and parts[:4] == ["apis", "apps", "v1", "namespaces"] and parts[5] == "daemonsets":
        with open(daemonsets_file) as f:
            items = json.load(f)
        return {"kind": "DaemonSetList", "apiVersion": "apps/v1", "metadata": {}, "items": items}
    if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
        return {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": []}
    return None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = document(self.path.split("?")[0], self.server.daemonsets_file)
        self.send_response(404 if body is None else 200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if body is None:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.daemonsets_file = sys.argv[1]
    print(server.server_address[1], flush=True)
    server.serve_forever()
