"""Index a folder on Ray: a local instance, or the cluster at RAY_ADDRESS.

    pip install ".[ray,pdf]"
    python examples/ray_ingest.py examples/data                                   # local Ray, embedded store
    RAY_ADDRESS=ray://head:10001 python examples/ray_ingest.py /mnt/photos \\
        --url http://qdrant:6333 --actors 8 --gpus-per-actor 1                   # cluster: actors write to Qdrant

Run it again after a crash or a cancel: unchanged files are skipped, changed ones replaced.
The same job from the command line: ``mmst index PATH --ray [--ray-actors N] [--ray-gpus-per-actor G]``.
"""

from __future__ import annotations

import argparse

from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore
from llama_index_mm_st.distributed import RayOptions, ray_index
from llama_index_mm_st.ingest import format_problems, format_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="files or folders (images, PDFs, .txt, .md, audio, video)")
    parser.add_argument("--model", default="openai/clip-vit-base-patch32")
    parser.add_argument("--store", default="./ray_index", help="embedded store directory (the driver writes)")
    parser.add_argument("--url", default=None, help="Qdrant server or cluster (the actors write); key: QDRANT_API_KEY")
    parser.add_argument("--collection", default="mmst")
    parser.add_argument("--actors", type=int, default=1, help="model actors (one model each)")
    parser.add_argument("--gpus-per-actor", type=float, default=None, help="e.g. 0.25 puts 4 actors on a GPU")
    parser.add_argument("--files-per-task", type=int, default=16, help="files each read/decode task takes")
    parser.add_argument("--rows-per-call", type=int, default=64, help="nodes per actor call")
    args = parser.parse_args()

    embedding = MultimodalEmbedding(args.model)  # pickled to the actors as its configuration
    where = {"url": args.url} if args.url else {"path": args.store}
    options = RayOptions(actors=args.actors, gpus_per_actor=args.gpus_per_actor, files_per_task=args.files_per_task,
                         rows_per_actor_call=args.rows_per_call, progress=True)
    with MultimodalQdrantStore(args.collection, **where) as store:
        # The job makes the collection with the model's vectors and records the model with the first
        # point, so `mmst search --store/--url` can open the index.
        summary = ray_index(args.paths, store, embedding, options, model_name=args.model)
        if summary.changed and not args.url:
            store.optimize()
    print("\n".join(format_summary(summary)))
    print("\n".join(format_problems(summary)))


if __name__ == "__main__":
    main()
