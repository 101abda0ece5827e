"""Reranking throughput: MultimodalReranker vs sentence-transformers (text) and plain transformers (BLIP).

Setup (issue 4): full-size architectures with random weights, built from configs (no hub):
a BERT-base cross-encoder (``BertConfig()`` defaults, one label) and BLIP ITM-base
(``BlipConfig()`` defaults: ViT-B/16 at 384 px, 12-layer BERT text encoder).

Figures, all measured in one run: after a warm-up call each, the variants run in turn
(A B C, A B C, ...) for ``--repeats`` rounds, and each one's best round counts (its median is
printed too). The cores are shared with other work, so interleaving and best-of keep the ratios
fair: a busy moment slows one round, not one variant.
- text: pairs/s for ours with defaults (precision "auto"), ours in fp32, and
  ``CrossEncoder.predict`` with its defaults, from LlamaIndex nodes to scores;
- BLIP: pairs/s for ours (defaults and fp32) and transformers' ``BlipForImageTextRetrieval``
  called as its docs show (processor, then ``model(**inputs)``, fp32), batched like ours,
  images decoded from JPEG files in both; a text query against images and an image query against texts;
- ranking agreement: Spearman of ours-default against ours-fp32 scores over the candidates
  (target >= 0.99), and the largest |ours fp32 - reference| (parity).

    python bench/rerank.py [--pairs 48] [--images 16] [--repeats 3] [--skip-blip]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, add_device_args, header, machine_record  # noqa: E402
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
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(repeats):
        for label, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
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
    ours_fp32 = MultimodalReranker(model_dir, top_n=len(nodes), device=args.device, precision="fp32")
    peer = CrossEncoder(model_dir, device=args.device)  # the peer on the same device
    pairs = [(query, text) for text in texts]

    print(f"text: BERT-base cross-encoder, {len(pairs)} pairs of 20-200 words, ours precision {ours.scorers[0].precision}")
    measured = rates(len(pairs), {
        "ours, defaults": lambda: ours.postprocess_nodes(nodes, query_str=query),
        "ours, fp32": lambda: ours_fp32.postprocess_nodes(nodes, query_str=query),
        "sentence-transformers CrossEncoder.predict, defaults": lambda: peer.predict(pairs),
    }, args.repeats)
    r_ours, r_fp32, r_peer = measured.values()

    default_scores = scores_in_input_order(ours.postprocess_nodes(nodes, query_str=query))
    fp32_scores = scores_in_input_order(ours_fp32.postprocess_nodes(nodes, query_str=query))
    reference = peer.predict(pairs).tolist()
    return {
        "text ours / sentence-transformers": r_ours / r_peer,
        "text ours fp32 / sentence-transformers": r_fp32 / r_peer,
        "text Spearman ours default vs fp32": spearman(default_scores, fp32_scores),
        "text max |ours fp32 - predict|": float(np.max(np.abs(np.array(fp32_scores) - np.array(reference)))),
    }


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
                                   precision="fp32")
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
    print(f"BLIP ITM-base, {n} JPEGs 640x480, batch {args.blip_batch}, ours precision {ours.scorers[0].precision}")
    print(" text query against images:")
    t_ours, t_fp32, t_peer = rates(n, {
        "ours, defaults": lambda: ours.postprocess_nodes(image_nodes, query_str=query),
        "ours, fp32": lambda: ours_fp32.postprocess_nodes(image_nodes, query_str=query),
        "transformers BlipForImageTextRetrieval, fp32": lambda: peer([query] * n, paths),
    }, args.repeats).values()
    print(" image query against texts:")
    i_ours, i_fp32, i_peer = rates(n, {
        "ours, defaults": lambda: ours.postprocess_nodes(text_nodes, image_query),
        "ours, fp32": lambda: ours_fp32.postprocess_nodes(text_nodes, image_query),
        "transformers BlipForImageTextRetrieval, fp32": lambda: peer(texts, [paths[0]] * n),
    }, args.repeats).values()

    default_scores = scores_in_input_order(ours.postprocess_nodes(image_nodes, query_str=query))
    fp32_scores = scores_in_input_order(ours_fp32.postprocess_nodes(image_nodes, query_str=query))
    fp32_texts = scores_in_input_order(ours_fp32.postprocess_nodes(text_nodes, image_query))
    default_texts = scores_in_input_order(ours.postprocess_nodes(text_nodes, image_query))
    reference = peer([query] * n, paths)
    return {
        "BLIP text->image ours / transformers": t_ours / t_peer,
        "BLIP text->image ours fp32 / transformers": t_fp32 / t_peer,
        "BLIP image->text ours / transformers": i_ours / i_peer,
        "BLIP image->text ours fp32 / transformers": i_fp32 / i_peer,
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
    add_device_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    print(header("rerank", args.device, args.precision))
    print(machine_record())
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    results = bench_text(args)
    if not args.skip_blip:
        results.update(bench_blip(args))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("\nsummary")
    for name, value in results.items():
        print(f"  {name:<52} {value:8.3f}")
    speedup = results["text ours / sentence-transformers"]
    agreement = results["text Spearman ours default vs fp32"]
    print(f"\ntext target: >= {TARGET_SPEEDUP}x sentence-transformers: {speedup:.2f}x "
          f"({'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}); Spearman >= {TARGET_SPEARMAN}: {agreement:.4f} "
          f"({'met' if agreement >= TARGET_SPEARMAN else 'NOT met'})")


if __name__ == "__main__":
    main()
