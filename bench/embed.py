"""Embedding throughput: ours vs sentence-transformers vs a one-at-a-time loop (LlamaIndex ClipEmbedding style).

Setup (issue 2): the full-size ViT-B/32 CLIP architecture with random weights, 256 JPEGs at 640x480
on disk, 2 CPU threads. Figures are images/s from file path to normalised vector, and captions/s.

    python bench/embed.py [--images 256] [--captions 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, add_device_args, best_of, header, machine_record  # noqa: E402


def build_clip_b32(path: Path) -> Path:
    """ViT-B/32 CLIP (transformers' CLIPConfig defaults) with random weights and a CLIP processor."""
    if (path / "config.json").exists():
        return path
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    words = [w for w in open(__file__).read().split() if w.isalpha()]
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(2000)]
    tokenizer = CLIPTokenizer().train_new_from_iterator(iter(corpus), vocab_size=4000)
    tokenizer.model_max_length = 77
    config = CLIPConfig()
    config.text_config.vocab_size = 49408
    config.text_config.eos_token_id = tokenizer.eos_token_id
    config.text_config.bos_token_id = tokenizer.bos_token_id
    config.text_config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def make_jpegs(folder: Path, count: int) -> list[Path]:
    """Photo-like 640x480 JPEGs (smooth gradients plus texture), quality 90."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    for i in range(count):
        path = folder / f"photo_{i:04d}.jpg"
        if not path.exists():
            base = np.stack([(x * (1 + i % 3) + y) % 256, (y * 2 + i) % 256, (x + y * (i % 5)) % 256], -1)
            noise = rng.integers(-20, 20, size=(480, 640, 3))
            Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--captions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    add_device_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from sentence_transformers import SentenceTransformer

    from llama_index_mm_st import MultimodalEmbedding

    model_dir = build_clip_b32(CACHE / "clip-vit-b32-random")
    paths = make_jpegs(CACHE / "jpegs-640x480", args.images)
    str_paths = [str(p) for p in paths]
    rng = random.Random(1)
    vocab = "a photo of the red blue car dog cat street chart slide revenue river night tree person".split()
    captions = [" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 16))) for _ in range(args.captions)]

    ours = MultimodalEmbedding(str(model_dir), device=args.device, precision=args.precision)
    ours_fp32 = MultimodalEmbedding(str(model_dir), device=args.device, precision="fp32")
    st = SentenceTransformer(str(model_dir), device=args.device)  # the peer on the same device

    def st_images() -> np.ndarray:
        return st.encode(str_paths, normalize_embeddings=True)

    def one_at_a_time() -> list:
        out = []
        for p in str_paths:
            with Image.open(p) as image:
                out.append(st.encode([image.convert("RGB")], normalize_embeddings=True)[0])
        return out

    print(header("embed", args.device, f"{args.precision} (resolved: {ours.precision})"))
    print(machine_record())
    print(f"ours default precision: {ours.precision}; {args.images} JPEGs 640x480; {args.captions} captions")
    image_rows = {
        "ours (defaults)": best_of(lambda: ours.get_image_embedding_batch(paths), args.repeats),
        "ours (fp32)": best_of(lambda: ours_fp32.get_image_embedding_batch(paths), args.repeats),
        "sentence-transformers encode": best_of(st_images, args.repeats),
        "one at a time (ClipEmbedding style)": best_of(one_at_a_time, 1, warmup=0),
    }
    text_rows = {
        "ours (defaults)": best_of(lambda: ours.get_text_embedding_batch(captions), args.repeats),
        "ours (fp32)": best_of(lambda: ours_fp32.get_text_embedding_batch(captions), args.repeats),
        "sentence-transformers encode": best_of(lambda: st.encode(captions, normalize_embeddings=True), args.repeats),
        "one at a time (ClipEmbedding style)": best_of(
            lambda: [st.encode([c], normalize_embeddings=True) for c in captions[:200]], 1, warmup=0) * len(captions) / 200,
    }
    fast = np.array(ours.get_image_embedding_batch(paths))
    exact = np.array(ours_fp32.get_image_embedding_batch(paths))
    reference = st_images()
    image_cos = float(np.min(np.sum(fast * exact, axis=1)))
    fp32_vs_st = float(np.min(np.sum(exact * reference, axis=1)))
    fast_t = np.array(ours.get_text_embedding_batch(captions[:200]))
    exact_t = np.array(ours_fp32.get_text_embedding_batch(captions[:200]))
    text_cos = float(np.min(np.sum(fast_t * exact_t, axis=1)))

    peer = "sentence-transformers encode"
    print("\n| images (path -> normalised vector) | img/s | vs sentence-transformers |")
    print("|---|---|---|")
    for name, seconds in image_rows.items():
        rate = args.images / seconds
        print(f"| {name} | {rate:.1f} | {image_rows[peer] / seconds:.2f}x |")
    print("\n| captions | captions/s | vs sentence-transformers |")
    print("|---|---|---|")
    for name, seconds in text_rows.items():
        print(f"| {name} | {args.captions / seconds:.1f} | {text_rows[peer] / seconds:.2f}x |")

    queries = captions[:64]

    async def concurrent() -> list:
        return await asyncio.gather(*(ours.aget_query_embedding(q) for q in queries))

    async def sequential() -> list:
        return [await ours.aget_query_embedding(q) for q in queries]

    concurrent_s = best_of(lambda: asyncio.run(concurrent()), args.repeats)
    sequential_s = best_of(lambda: asyncio.run(sequential()), args.repeats)
    print(f"\n64 aget_query_embedding calls: concurrent {concurrent_s * 1e3:.0f} ms, sequential "
          f"{sequential_s * 1e3:.0f} ms: {sequential_s / concurrent_s:.1f}x faster coalesced")
    print(f"\nmin cosine, defaults vs fp32: images {image_cos:.5f}, captions {text_cos:.5f}; "
          f"ours fp32 vs sentence-transformers (full decode): {fp32_vs_st:.6f}")


if __name__ == "__main__":
    main()
