#!/usr/bin/env python3
"""Checks the workspace's declared MSRV (`rust-version` in Cargo.toml).

Only one toolchain is at hand, so the MSRV is checked two ways that need no
other: clippy's `incompatible_msrv` lint (run by `cargo clippy`) flags any
standard-library API newer than the declared version in our own code, and
this script fails if a dependency that is actually built for this host
declares a `rust-version` newer than ours. It also fails if the toolchain in
use is older than the MSRV.
"""

import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split("-")[0].split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    host = next(
        line.split()[1]
        for line in subprocess.run(
            ["rustc", "-vV"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        if line.startswith("host:")
    )
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in metadata["packages"]}
    members = set(metadata["workspace_members"])
    declared = {packages[m]["rust_version"] for m in members}
    if len(declared) != 1 or None in declared:
        sys.exit(f"every workspace member must inherit one rust-version, found {declared}")
    msrv = declared.pop()
    # Every package reachable from the workspace for this host.
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    seen, todo = set(), list(members)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(d["pkg"] for d in nodes[current]["deps"])
    newer = sorted(
        (packages[p]["name"], packages[p]["version"], packages[p]["rust_version"])
        for p in seen - members
        if packages[p].get("rust_version") and version(packages[p]["rust_version"]) > version(msrv)
    )
    if newer:
        for name, ver, needs in newer:
            print(f"  {name} {ver} needs rust {needs}", file=sys.stderr)
        sys.exit(f"the declared MSRV {msrv} is older than these dependencies need")
    rustc = subprocess.run(["rustc", "--version"], check=True, capture_output=True, text=True).stdout
    if version(rustc.split()[1]) < version(msrv):
        sys.exit(f"{rustc.strip()} is older than the MSRV {msrv}")
    print(f"MSRV {msrv}: every dependency built for {host} declares at most {msrv}; {rustc.strip()}")


if __name__ == "__main__":
    main()
