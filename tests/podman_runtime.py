#!/usr/bin/env python3
"""The OCI runtime that test_kubernetes_boot.py gives podman: runc, with the
resource limits taken out of each container's and each exec's specification.

Podman writes RLIMIT_NOFILE and RLIMIT_NPROC into every specification, even
with no ulimit asked for, and the sandbox of .ci/run's machines refuses any
setrlimit inside a container (runc and crun alike; Docker asks for none, so its
containers start). The manifests set no limit of this kind: nothing they say is
lost. podman calls this as it calls runc: `create --bundle DIR ...` (the
specification is DIR/config.json) and `exec --process FILE ...`.
"""

import json
import os
import shutil
import sys


def without_rlimits(path: str, process_of=lambda spec: spec["process"]) -> None:
    with open(path) as file:
        spec = json.load(file)
    process_of(spec).pop("rlimits", None)
    with open(path, "w") as file:
        json.dump(spec, file)


def main(args: list[str]) -> None:
    if "--bundle" in args:
        without_rlimits(os.path.join(args[args.index("--bundle") + 1], "config.json"))
    if "--process" in args:
        without_rlimits(args[args.index("--process") + 1], process_of=lambda spec: spec)
    runc = shutil.which("runc") or "/usr/sbin/runc"
    os.execv(runc, [runc, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
