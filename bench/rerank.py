"""Reranking throughput: MultimodalReranker vs sentence-transformers (text) and plain transformers (BLIP).

Setup (issue 4): full-size architectures with random weights, built from configs (no hub):
a BERT-base cross-encoder (``BertConfig()`` defaults, one label) and BLIP ITM-base
(``BlipConfig()`` defaults: ViT-B/16 at 384 px, 12-layer BERT text encoder).

Figures, all measured in one run: after a warm-up call each, the variants run in turn
(A B C, A B C, ...) for ``--repeats`` rounds, and each one's best round counts (its median is
printed too). The cores are shared with other work, so interleaving and best-of keep the ratios
fair: a busy moment slows one round, not one variant.
- text: pairs/s for ours with defaults (``backend="auto"``, precision "auto"), ours on torch fp32,
  on ONNX Runtime fp32 and int8, and ``CrossEncoder.predict`` with its defaults, from LlamaIndex
  nodes to scores; sentence-transformers' own ``CrossEncoder(backend="onnx")`` (optimum's export)
  runs in the peer venv (``_peers.py``: it needs sentence-transformers 5 and transformers 4.57) on
  the same pairs; and this machine's limit: the fastest exact forward pass over the pairs already
  tokenised, in the batches ours makes;
- BLIP: pairs/s for ours (defaults, torch fp32, ONNX Runtime fp32) and transformers' ``BlipForImageTextRetrieval``
  called as its docs show (processor, then ``model(**inputs)``, fp32), batched like ours,
  images decoded from JPEG files in both; a text query against images and an image query against texts;
- ranking agreement: Spearman of ours-default against ours-fp32 scores over the candidates
  (target >= 0.99), and the largest |ours fp32 - reference| (parity).

    PYTHONPATH=. python bench/rerank.py [--pairs 48] [--images 16] [--repeats 3] [--skip-blip] [--no-peers]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (CACHE, add_device_args, best_of, cpu_flags_summary, header, interleaved,  # noqa: E402
                     load_average, machine_record)
from _peers import run_peer  # noqa: E402
from embed import make_jpegs  # noqa: E402

WORDS = (
    "cat dog photo chart slide scan page invoice receipt red green blue tree house car street river mountain "
    "beach city night day graph table figure report revenue quarter error code product name person face text "
    "image document sky water boat train plane bird flower garden kitchen office the a of and in on with for"
).split()
TARGET_SPEEDUP = 2.5
TARGET_SPEARMAN = 0.99


def _tokenizer() -> Any:
    from transformers import BertTokenizer

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) for _ in range(3000)]
    return BertTokenizer().train_new_from_iterator(iter(corpus), vocab_size=2000)


def build_bert_base_cross_encoder(path: Path) -> Path:
    """BERT-base shapes (12 layers, hidden 768, vocab 30522), one label, random weights."""
    if (path / "config.json").exists():
        return path
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(num_labels=1, architectures=["BertForSequenceClassification"])
    BertForSequenceClassification(config).eval().save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


def build_blip_itm_base(path: Path) -> Path:
    """BLIP ITM-base shapes (transformers' BlipConfig defaults), random weights, 384 px processor."""
    if (path / "config.json").exists():
        return path
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    torch.manual_seed(0)
    config = BlipConfig(architectures=["BlipForImageTextRetrieval"])
    config.text_config.vocab_size = 30524
    # BlipVisionConfig initialises with std 1e-10, which makes every image embed alike (ITM scores
    # of different images then agree to 2e-7 and any ranking of them is float noise). 0.02 as BERT.
    config.vision_config.initializer_range = 0.02
    BlipForImageTextRetrieval(config).eval().save_pretrained(path)
    size = config.vision_config.image_size
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": size, "width": size}), tokenizer=_tokenizer())
    processor.save_pretrained(path)
    return path


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def scores_in_input_order(result: list[Any]) -> list[float]:
    return [item.score for item in sorted(result, key=lambda item: item.retrieval_rank)]


def rates(pairs: int, variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Pairs/s of each variant: best of ``repeats`` interleaved rounds, after one warm-up call each."""
    times = interleaved(variants, repeats)
    result = {}
    for label, seconds in times.items():
        best, median = min(seconds), statistics.median(seconds)
        print(f"  {label:<52} {pairs / best:8.2f} pairs/s best, {pairs / median:8.2f} median  "
              f"({best:.2f} s per {pairs} pairs)", flush=True)
        result[label] = pairs / best
    return result


def bench_text(args: argparse.Namespace) -> dict[str, float]:
    from llama_index.core.schema import NodeWithScore, TextNode
    from sentence_transformers import CrossEncoder

    from llama_index_mm_st.rerank import MultimodalReranker

    model_dir = str(build_bert_base_cross_encoder(CACHE / "bert-base-cross-encoder-random"))
    rng = random.Random(2)
    query = "quarter revenue chart for the product in the city office"
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 200))) for _ in range(args.pairs)]
    nodes = [NodeWithScore(node=TextNode(text=text), score=1.0 - i / 1000) for i, text in enumerate(texts)]
    ours = MultimodalReranker(model_dir, top_n=len(nodes), device=args.device, precision=args.precision)
    ours_fp32 = MultimodalReranker(model_dir, top_n=len(nodes), device=args.device, backend="torch", precision="fp32")
    variants = {"ours, defaults": ours, "ours, torch fp32": ours_fp32}
    if args.device == "cpu":
        variants["ours, ONNX Runtime fp32"] = MultimodalReranker(model_dir, top_n=len(nodes), backend="onnx")
        variants["ours, ONNX Runtime int8"] = MultimodalReranker(model_dir, top_n=len(nodes), backend="onnx",
                                                                 precision="int8")
    peer = CrossEncoder(model_dir, device=args.device)  # the peer on the same device
    pairs = [(query, text) for text in texts]

    chosen = ours.describe()[0]
    print(f"text: BERT-base cross-encoder, {len(pairs)} pairs of 20-200 words; ours defaults: {chosen['backend']} "
          f"{chosen['precision']} ({chosen['reason']})")
    runs: dict[str, Callable[[], object]] = {
        name: (lambda r=r: r.postprocess_nodes(nodes, query_str=query)) for name, r in variants.items()}
    runs["sentence-transformers CrossEncoder.predict, defaults"] = lambda: peer.predict(pairs)
    measured = rates(len(pairs), runs, args.repeats)
    r_peer = measured["sentence-transformers CrossEncoder.predict, defaults"]
    scores = {name: scores_in_input_order(r.postprocess_nodes(nodes, query_str=query)) for name, r in variants.items()}
    reference = peer.predict(pairs).tolist()
    fp32_scores = scores["ours, torch fp32"]
    results = {f"text {name} / CrossEncoder.predict": rate / r_peer for name, rate in measured.items()
               if name in variants}
    results["text Spearman ours default vs fp32"] = spearman(scores["ours, defaults"], fp32_scores)
    results["text max |ours torch fp32 - predict|"] = float(np.max(np.abs(np.array(fp32_scores) - np.array(reference))))
    if args.device == "cpu":
        onnx = np.array(scores["ours, ONNX Runtime fp32"])
        results["text max |ours ONNX fp32 - predict|"] = float(np.max(np.abs(onnx - np.array(reference))))
        results["text Spearman ours int8 vs fp32"] = spearman(scores["ours, ONNX Runtime int8"], fp32_scores)
        limit = text_forward_limit(variants["ours, ONNX Runtime fp32"], peer, pairs, args)
        print(f"  {'machine limit (fastest exact forward, tokenised pairs)':<52} {limit:8.2f} pairs/s")
        results["text ours defaults / machine limit"] = measured["ours, defaults"] / limit
        if not args.no_peers:
            peer_onnx = run_peer("_peer_st_onnx.py", {
                "model_dir": model_dir, "export_dir": str(CACHE / "bert-base-cross-encoder-random-st-onnx"),
                "pairs": pairs, "repeats": args.repeats, "batch_size": 32, "threads": args.threads})
            if "error" in peer_onnx:
                print(f"  sentence-transformers CrossEncoder(backend='onnx'): not run: {peer_onnx['error']}")
            else:
                rate = len(pairs) / peer_onnx["seconds"]
                versions = ", ".join(f"{k} {v}" for k, v in peer_onnx["versions"].items())
                print(f"  {'sentence-transformers CrossEncoder(backend=onnx)':<52} {rate:8.2f} pairs/s best, "
                      f"{len(pairs) / peer_onnx['median']:8.2f} median  ({versions}; its own process, after ours)")
                results["text ours ONNX fp32 / sentence-transformers backend=onnx"] = measured["ours, ONNX Runtime fp32"] / rate
                results["text max |sentence-transformers onnx - predict|"] = float(
                    np.max(np.abs(np.array(peer_onnx["scores"]) - np.array(reference))))
    return results


def text_forward_limit(onnx_reranker: Any, peer: Any, pairs: list[tuple[str, str]], args: argparse.Namespace) -> float:
    """Pairs/s of the fastest exact forward pass (torch fp32 or ONNX Runtime fp32) over pairs already
    tokenised in length-sorted batches of 32, plus the tokenising itself (it shares the cores)."""
    from pathlib import Path as _Path

    from llama_index_mm_st.onnx.session import OnnxGraph

    ordered = sorted(pairs, key=lambda pair: -len(pair[1]))
    tokenise = lambda: [peer.preprocess(ordered[i : i + 32]) for i in range(0, len(ordered), 32)]  # noqa: E731
    tokenise_s = best_of(tokenise, args.repeats)
    batches = tokenise()
    graph = OnnxGraph(_Path(onnx_reranker.describe()[0]["parts"]["scores"].split(": ", 1)[1]))
    with torch.inference_mode():
        torch_s = best_of(lambda: [peer(dict(b))["scores"] for b in batches], args.repeats)
    onnx_s = best_of(lambda: [graph.run(b) for b in batches], args.repeats)
    print(f"  forward only: torch fp32 {len(pairs) / torch_s:.2f} pairs/s, ONNX Runtime fp32 {len(pairs) / onnx_s:.2f}; "
          f"tokenising {len(pairs) / tokenise_s:.0f} pairs/s")
    return len(pairs) / (min(torch_s, onnx_s) + tokenise_s)


def bench_blip(args: argparse.Namespace) -> dict[str, float]:
    from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode
    from transformers import BlipForImageTextRetrieval, BlipProcessor

    from llama_index_mm_st.rerank import MultimodalReranker

    model_dir = str(build_blip_itm_base(CACHE / "blip-itm-base-random-std002"))
    paths = make_jpegs(CACHE / "jpegs-640x480", args.images)
    rng = random.Random(3)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(args.images)]
    query = "a red car in the city at night"
    image_nodes = [NodeWithScore(node=ImageNode(image_path=str(p)), score=0.5) for p in paths]
    text_nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in texts]
    image_query = QueryBundle("", image_path=str(paths[0]))
    ours = MultimodalReranker(model_dir, top_n=len(paths), batch_size=args.blip_batch, device=args.device,
                              precision=args.precision)
    ours_fp32 = MultimodalReranker(model_dir, top_n=len(paths), batch_size=args.blip_batch, device=args.device,
                                   backend="torch", precision="fp32")
    ours_onnx = MultimodalReranker(model_dir, top_n=len(paths), batch_size=args.blip_batch, backend="onnx") \
        if args.device == "cpu" else ours_fp32
    model = BlipForImageTextRetrieval.from_pretrained(model_dir).eval().to(args.device)  # the peer, same device
    processor = BlipProcessor.from_pretrained(model_dir)

    @torch.inference_mode()
    def peer(text_list: list[str], image_paths: list[Path]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(text_list), args.blip_batch):
            images = [Image.open(p).convert("RGB") for p in image_paths[start : start + args.blip_batch]]
            inputs = processor(images=images, text=text_list[start : start + args.blip_batch], padding=True,
                               return_tensors="pt").to(args.device)
            out.extend(model(**inputs, use_itm_head=True).itm_score.softmax(-1)[:, 1].tolist())
        return out

    n = len(paths)
    chosen = ours.describe()[0]
    print(f"BLIP ITM-base, {n} JPEGs 640x480, batch {args.blip_batch}, ours defaults: {chosen['backend']} "
          f"{chosen['precision']} ({chosen['reason']})")
    print(" text query against images:")
    t_ours, t_fp32, t_onnx, t_peer = rates(n, {
        "ours, defaults": lambda: ours.postprocess_nodes(image_nodes, query_str=query),
        "ours, torch fp32": lambda: ours_fp32.postprocess_nodes(image_nodes, query_str=query),
        "ours, ONNX Runtime fp32": lambda: ours_onnx.postprocess_nodes(image_nodes, query_str=query),
        "transformers BlipForImageTextRetrieval, fp32": lambda: peer([query] * n, paths),
    }, args.repeats).values()
    print(" image query against texts:")
    i_ours, i_fp32, i_onnx, i_peer = rates(n, {
        "ours, defaults": lambda: ours.postprocess_nodes(text_nodes, image_query),
        "ours, torch fp32": lambda: ours_fp32.postprocess_nodes(text_nodes, image_query),
        "ours, ONNX Runtime fp32": lambda: ours_onnx.postprocess_nodes(text_nodes, image_query),
        "transformers BlipForImageTextRetrieval, fp32": lambda: peer(texts, [paths[0]] * n),
    }, args.repeats).values()

    default_scores = scores_in_input_order(ours.postprocess_nodes(image_nodes, query_str=query))
    fp32_scores = scores_in_input_order(ours_fp32.postprocess_nodes(image_nodes, query_str=query))
    fp32_texts = scores_in_input_order(ours_fp32.postprocess_nodes(text_nodes, image_query))
    default_texts = scores_in_input_order(ours.postprocess_nodes(text_nodes, image_query))
    reference = peer([query] * n, paths)
    return {
        "BLIP text->image ours / transformers": t_ours / t_peer,
        "BLIP text->image ours torch fp32 / transformers": t_fp32 / t_peer,
        "BLIP text->image ours ONNX fp32 / transformers": t_onnx / t_peer,
        "BLIP image->text ours / transformers": i_ours / i_peer,
        "BLIP image->text ours torch fp32 / transformers": i_fp32 / i_peer,
        "BLIP image->text ours ONNX fp32 / transformers": i_onnx / i_peer,
        "BLIP max |ours ONNX fp32 - transformers|": float(np.max(np.abs(
            np.array(scores_in_input_order(ours_onnx.postprocess_nodes(image_nodes, query_str=query))) - np.array(peer([query] * n, paths))))),
        "BLIP Spearman ours default vs fp32 (text->image)": spearman(default_scores, fp32_scores),
        "BLIP Spearman ours default vs fp32 (image->text)": spearman(default_texts, fp32_texts),
        "BLIP max |ours fp32 - transformers|": float(np.max(np.abs(np.array(fp32_scores) - np.array(reference)))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=48, help="text candidates per query")
    parser.add_argument("--images", type=int, default=16, help="BLIP candidates per query")
    parser.add_argument("--blip-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-blip", action="store_true")
    parser.add_argument("--no-peers", action="store_true", help="skip sentence-transformers' backend='onnx' (the peer venv)")
    add_device_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    print(header("rerank", args.device, args.precision))
    print(machine_record())
    print(cpu_flags_summary())
    print(f"at start: {load_average()} (other processes share these cores)")
    results = bench_text(args)
    if not args.skip_blip:
        results.update(bench_blip(args))
    print(f"at end: {load_average()}")
    print("\nsummary")
    for name, value in results.items():
        print(f"  {name:<52} {value:8.3f}")
    speedup = results["text ours, defaults / CrossEncoder.predict"]
    agreement = results["text Spearman ours default vs fp32"]
    print(f"\ntext target: >= {TARGET_SPEEDUP}x sentence-transformers: {speedup:.2f}x "
          f"({'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}); Spearman >= {TARGET_SPEARMAN}: {agreement:.4f} "
          f"({'met' if agreement >= TARGET_SPEARMAN else 'NOT met'})")


if __name__ == "__main__":
    main()
