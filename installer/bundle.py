"""``make bundle``: an offline install bundle for branch machines without registry access.

``dist/regbridge-<version>-<python>-<platform>.tar.gz`` holds every wheel the agent needs (the
project's own and all its dependencies', built or downloaded here), ``install.sh``, ``SHA256SUMS``
and ``bundle.json`` (what it was built for). On the branch machine::

    tar xzf regbridge-0.1.0-cp311-linux_x86_64.tar.gz
    sudo ./regbridge-0.1.0/install.sh /opt/regbridge     # a venv, pip install --no-index
    sudo /opt/regbridge/bin/regbridge install --bundle bank.json

Wheels are for the Python and platform the bundle was built on (``bundle.json`` says which):
build it on the same distribution and Python as the branches run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

from sdk import __version__

__all__ = ["build_bundle"]

INSTALL_SH = """#!/bin/sh
# Install the RegBridge agent from this bundle, with the package index disabled.
#   ./install.sh [PREFIX]          PREFIX defaults to /opt/regbridge; PYTHON=python3.11 to choose one
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${{1:-/opt/regbridge}}
PYTHON=${{PYTHON:-python3}}
(cd "$HERE/wheels" && sha256sum --quiet -c ../SHA256SUMS) || {{ echo "bundle damaged: checksums differ" >&2; exit 1; }}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == ({major}, {minor}) else 1)' || {{
    echo "this bundle's wheels are for Python {major}.{minor}; set PYTHON=python{major}.{minor}" >&2; exit 1; }}
"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --no-index --find-links "$HERE/wheels" "regbridge[{extras}]=={version}"
"$PREFIX/bin/regbridge" --version
echo "installed in $PREFIX; next: sudo $PREFIX/bin/regbridge install --bundle ENROLMENT-BUNDLE.json"
"""


def build_bundle(project: Path, out: Path, *, extras: str = "agent") -> Path:
    """Build the bundle from ``project`` into ``out``; returns the tarball's path."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    name = f"regbridge-{__version__}"
    staging = out / name
    if staging.exists():
        shutil.rmtree(staging)
    wheels = staging / "wheels"
    wheels.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), f"{project}[{extras}]"],
        check=True,
    )
    # pip itself and the build tools are not needed: a venv brings pip, and everything here is a wheel
    sums = []
    for wheel in sorted(wheels.glob("*.whl")):
        sums.append(f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}  {wheel.name}")
    (staging / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="ascii")
    script = staging / "install.sh"
    script.write_text(
        INSTALL_SH.format(
            major=sys.version_info.major, minor=sys.version_info.minor, extras=extras, version=__version__
        ),
        encoding="utf-8",
    )
    script.chmod(0o755)
    (staging / "bundle.json").write_text(
        json.dumps(
            {
                "version": __version__,
                "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                "platform": sysconfig.get_platform(),
                "machine": platform.machine(),
                "extras": extras,
                "wheels": len(sums),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    tarball = out / f"{name}-{tag}-{plat}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(staging, arcname=name)
    shutil.rmtree(staging)
    return tarball


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist"))
    parser.add_argument("--extras", default="agent", help="e.g. agent,s3")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob(f"regbridge-{__version__}-*.tar.gz"):
        old.unlink()
    path = build_bundle(Path(__file__).resolve().parent.parent, args.out, extras=args.extras)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
