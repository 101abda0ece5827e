"""Can a newly built Edge store skip the WAL? kill -9 a writer again and again and check.

The writer builds a shard the way ``mmst index`` fills a new store: batches of points, ``flush()``
at every checkpoint (after which the checkpoint is recorded), ``optimize()`` at the end. The parent
kills it with SIGKILL at a random moment, then checks that the shard still opens, that every
checkpointed batch is there, and that a re-run (upsert everything again, optimize) ends with exactly
the reference set of ids, vectors and payloads. Run with ``--wal on`` for the control.

    python bench/wal_crash.py --kills 20 --wal off
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_device_args, header  # noqa: E402

DIM, BATCH, BATCHES, CHECKPOINT = 64, 500, 40, 4


def config(wal: bool):  # type: ignore[no-untyped-def]
    import qdrant_edge as q

    return q.EdgeConfig(vectors={"text": q.EdgeVectorParams(DIM, q.Distance.Cosine)}, wal_enabled=wal)


def batch(b: int) -> list:  # type: ignore[type-arg]
    import qdrant_edge as q

    rng = np.random.default_rng(b)
    vecs = rng.normal(size=(BATCH, DIM)).astype(np.float32).tolist()
    return [q.Point(b * BATCH + i, {"text": v}, {"batch": b, "name": f"p{b}-{i}"}) for i, v in enumerate(vecs)]


def write(path: str, wal: bool, resume: bool) -> None:
    """The child: fill the shard, flushing and recording a checkpoint every CHECKPOINT batches."""
    import qdrant_edge as q

    shard_dir = Path(path) / "shard"
    shard = q.EdgeShard.load(str(shard_dir), config(wal)) if resume else q.EdgeShard.create(str(shard_dir), config(wal))
    for b in range(BATCHES):
        shard.update(q.UpdateOperation.upsert_points(batch(b)))
        if (b + 1) % CHECKPOINT == 0:
            print("phase flush", flush=True)
            shard.flush()
            (Path(path) / "checkpoint").write_text(str(b + 1))
    print("phase optimize", flush=True)
    shard.optimize()
    shard.flush()
    shard.close()


def snapshot(shard) -> dict:  # type: ignore[no-untyped-def, type-arg]
    import qdrant_edge as q

    out, offset = {}, None
    while True:
        records, offset = shard.scroll(q.ScrollRequest(offset=offset, limit=1000, with_payload=True, with_vector=True))
        for r in records:
            out[int(r.id)] = (json.dumps(dict(r.payload), sort_keys=True), np.round(np.array(r.vector["text"]), 5).tobytes())
        if offset is None:
            return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--wal", choices=["on", "off"], default="off")
    parser.add_argument("--phase", choices=["any", "flush", "optimize"], default="any",
                        help="kill at a random moment (any), or within 0.3 s after a random flush starts, or during optimize()")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    add_device_args(parser, precision=False)
    args = parser.parse_args()
    if args.child:
        write(args.child[0], args.child[1] == "on", args.child[2] == "resume")
        return
    import qdrant_edge as q

    print(header("wal_crash", args.device, None, note="engine-level crash test; no device used"))
    wal = args.wal == "on"
    with tempfile.TemporaryDirectory() as ref_dir:
        subprocess.run([sys.executable, __file__, "--child", ref_dir, args.wal, "new"], check=True, stdout=subprocess.DEVNULL)
        reference = snapshot(q.EdgeShard.load(str(Path(ref_dir) / "shard")))
    print(f"reference: {len(reference)} points; wal={'on' if wal else 'off'}; {args.kills} kills, phase {args.phase}")
    rng = random.Random(0)
    outcomes: dict[str, int] = {}
    for k in range(args.kills):
        with tempfile.TemporaryDirectory() as tmp:
            child = subprocess.Popen([sys.executable, __file__, "--child", tmp, args.wal, "new"],
                                     stdout=subprocess.PIPE, text=True)
            if args.phase == "any":
                delay = rng.uniform(0.8, 5.0)  # start-up is about 1 s of imports; the whole run 2-8 s here
                time.sleep(delay)
            else:
                started = time.perf_counter()
                skip = rng.randrange(BATCHES // CHECKPOINT) if args.phase == "flush" else 0
                for line in child.stdout:  # type: ignore[union-attr]
                    if line.strip() == f"phase {args.phase}":
                        if skip == 0:
                            break
                        skip -= 1
                time.sleep(rng.uniform(0.0, 0.3 if args.phase == "flush" else 0.15))
                delay = time.perf_counter() - started
            finished = child.poll() is not None
            child.send_signal(signal.SIGKILL)
            child.wait()
            if finished:
                print(f"kill {k} at {delay:.1f} s: the writer had already finished (not a crash)")
                continue
            done = int((Path(tmp) / "checkpoint").read_text()) if (Path(tmp) / "checkpoint").exists() else 0
            shard_dir = Path(tmp) / "shard"
            try:
                shard = q.EdgeShard.load(str(shard_dir))
            except (OSError, RuntimeError, ValueError) as exc:
                outcome = f"does not open ({type(exc).__name__})"
                print(f"kill {k} at {delay:.1f} s: checkpoint {done}: {outcome}: {exc}")
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                continue
            got = snapshot(shard)
            lost = [b for b in range(done) if any(b * BATCH + i not in got for i in range(BATCH))]
            shard.close()
            rerun = subprocess.run([sys.executable, __file__, "--child", tmp, args.wal, "resume"], stdout=subprocess.DEVNULL)
            final = snapshot(q.EdgeShard.load(str(shard_dir))) if rerun.returncode == 0 else {}
            exact = final == reference
            outcome = ("opens" + (", checkpointed batches LOST" if lost else "")
                       + (", re-run exact" if exact else f", re-run NOT exact (rc {rerun.returncode})"))
            print(f"kill {k} at {delay:.1f} s: checkpoint {done}, {len(got)} points after the kill: {outcome}")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print("summary:", json.dumps(outcomes, indent=1))


if __name__ == "__main__":
    main()
