#!/usr/bin/env python3
"""Unpacks an OCI image archive (a tar of an OCI image layout) into a root filesystem.

    python3 scripts/oci_unpack.py ARCHIVE ROOTFS

Follows the layout as the OCI image specification v1.1 defines it (image-layout.md,
image-index.md, manifest.md, layer.md at github.com/opencontainers/image-spec): index.json names
the manifest, the manifest names the config and the layers, every blob is checked against its
sha256 digest and size, layers (plain or gzip tar) are applied in order with whiteouts
(`.wh.<name>` removes, `.wh..wh..opq` empties the directory). Refuses members that would land
outside ROOTFS. Prints the image config's `config` object (User, Entrypoint, Cmd, ...) as JSON.

Only the standard library is used, so CI needs nothing installed to check an image.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def fail(message):
    print(f"oci_unpack: {message}", file=sys.stderr)
    sys.exit(1)


class Layout:
    def __init__(self, archive):
        self.tar = tarfile.open(archive)
        self.names = {m.name.lstrip("./"): m for m in self.tar.getmembers()}

    def read(self, path):
        member = self.names.get(path)
        if member is None or not member.isfile():
            fail(f"the archive has no {path}")
        return self.tar.extractfile(member).read()

    def blob(self, descriptor):
        algorithm, _, digest = descriptor.get("digest", "").partition(":")
        if algorithm != "sha256" or len(digest) != 64:
            fail(f"unsupported digest {descriptor.get('digest')!r}")
        data = self.read(f"blobs/sha256/{digest}")
        if hashlib.sha256(data).hexdigest() != digest:
            fail(f"blob {digest} does not match its digest")
        if descriptor.get("size") != len(data):
            fail(f"blob {digest} is {len(data)} bytes, its descriptor says {descriptor.get('size')}")
        return data


def pick_manifest(layout, index):
    """The first image manifest of the index (nested indexes followed, linux only)."""
    for descriptor in index.get("manifests", []):
        platform = descriptor.get("platform", {})
        if platform.get("os", "linux") != "linux":
            continue
        media = descriptor.get("mediaType")
        if media == INDEX:
            return pick_manifest(layout, json.loads(layout.blob(descriptor)))
        if media in (MANIFEST, DOCKER_MANIFEST):
            return json.loads(layout.blob(descriptor))
    fail("the index names no linux image manifest")


def inside(root, path):
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(root, path))
    return target == real_root or target.startswith(real_root + os.sep)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def apply_layer(data, root):
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        for member in layer.getmembers():
            name = os.path.normpath(member.name.lstrip("/"))
            if name == ".":
                continue
            if name.startswith("..") or not inside(root, os.path.dirname(name)):
                fail(f"layer member {member.name!r} escapes the root filesystem")
            base = os.path.basename(name)
            parent = os.path.join(root, os.path.dirname(name))
            if base == ".wh..wh..opq":
                if os.path.isdir(parent):
                    for entry in os.listdir(parent):
                        remove(os.path.join(parent, entry))
                continue
            if base.startswith(".wh."):
                remove(os.path.join(parent, base[len(".wh."):]))
                continue
            if member.islnk() and not inside(root, member.linkname.lstrip("/")):
                fail(f"hard link {member.name!r} points outside the root filesystem")
            target = os.path.join(root, name)
            if os.path.lexists(target) and not (member.isdir() and os.path.isdir(target)):
                remove(target)
            member.name = name
            if member.islnk():
                member.linkname = member.linkname.lstrip("/")
            # Names were checked above; Python 3.12 warns unless the filter is named (older
            # versions without the extraction filters do not take the argument).
            try:
                layer.extract(member, root, numeric_owner=True, filter="fully_trusted")
            except TypeError:
                layer.extract(member, root, numeric_owner=True)


def main():
    if len(sys.argv) != 3:
        fail("usage: oci_unpack.py ARCHIVE ROOTFS")
    archive, root = sys.argv[1], sys.argv[2]
    layout = Layout(archive)
    marker = json.loads(layout.read("oci-layout"))
    if marker.get("imageLayoutVersion") != "1.0.0":
        fail(f"unsupported imageLayoutVersion {marker.get('imageLayoutVersion')!r}")
    manifest = pick_manifest(layout, json.loads(layout.read("index.json")))
    config = json.loads(layout.blob(manifest["config"]))
    if config.get("os") != "linux":
        fail(f"image os is {config.get('os')!r}, not linux")
    os.makedirs(root, exist_ok=True)
    for descriptor in manifest.get("layers", []):
        apply_layer(layout.blob(descriptor), root)
    print(json.dumps(config.get("config", {})))


if __name__ == "__main__":
    main()
