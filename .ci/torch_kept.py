"""Does installing the package keep the torch build that was installed first? (What the README's CPU recipe
relies on: torch from the CPU index first, then the package; no extra may pull another torch.)

A fresh venv gets a stand-in for a CPU torch (a wheel named ``torch 2.14.1+cpu`` holding only its
version, built here: the CPU index is not reachable from CI, PyPI is), then pip resolves
``pip install -e ".[EXTRAS]"`` against PyPI without installing (``--dry-run --report``). The check fails
when the resolution would install any torch or torchvision. Needs PyPI; about a minute.

    python .ci/torch_kept.py                 # the test extra (what CI installs)
    python .ci/torch_kept.py --extras pdf    # the README's CPU recipe
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = "2.14.1+cpu"
WATCHED = {"torch", "torchvision", "torchaudio"}


def stand_in_wheel(folder: Path, version: str = STAND_IN) -> Path:
    """A wheel named torch ``version`` that only says its version (enough for pip's resolver)."""
    name = f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    files = {
        "torch/__init__.py": f'__version__ = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: torch_kept\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def would_install(extras: str, work: Path) -> list[tuple[str, str]]:
    """(name, version) of each package ``pip install -e .[extras]`` would install over the stand-in torch."""
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    wheel = stand_in_wheel(work)
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "VIRTUAL_ENV")}  # CI's pins are its own
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index", str(wheel)], check=True, env=env)
    report = work / "report.json"
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--dry-run", "--report", str(report), "-e", target],
                   check=True, env=env)
    found = json.loads(report.read_text())["install"]
    return [(item["metadata"]["name"].lower(), item["metadata"]["version"]) for item in found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extras", default="test", help='extras to install ("" for the base package)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="torch-kept-") as work:
        planned = would_install(args.extras, Path(work))
    swapped = [f"{name}=={version}" for name, version in planned if name in WATCHED]
    label = f".[{args.extras}]" if args.extras else "."
    if swapped:
        print(f"torch_kept: installing {label} over torch {STAND_IN} would also install {', '.join(swapped)}",
              file=sys.stderr)
        return 1
    print(f"torch_kept: {label} keeps torch {STAND_IN} ({len(planned)} other packages to install)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
