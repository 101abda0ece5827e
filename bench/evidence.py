"""Evidence: what it costs on a search, what it saves in the answer, and the methods it was chosen over.

Full-size architectures with random weights (no model hub here): CLIP ViT-B/32 (``bench/embed.py``)
and BLIP ITM-base (``bench/rerank.py``), the default CPU reranker for images.

- **cost**: a text search of an image index (640x480 JPEGs in an Edge store) for the top 5 with the
  BLIP reranker (15 candidates), with and without ``evidence=True``, interleaved rounds, best and
  median of each; the row is the extra time evidence adds, against the target of 25%.
- **tokens**: a fixture of PDF pages (text lines, rendered at the reader's 150 dpi), one query word
  per page: the image tokens the answering LLM gets with whole pages against the crops of the matched
  lines plus a 256 px page, by two published counting rules (OpenAI's GPT-4o tiles: 85 + 170 per 512 px
  tile after fitting 2048 px and a 768 px short side; Anthropic's: width x height / 750 after fitting
  1568 px).
- **regions** (query by example, ``--placements`` random placements of a picture pasted into a larger
  one): IoU with the target for the crop search alone (coarse windows and refinement), the crop search
  with pixel-matching proposals (what evidence uses), and the vision tower's patch tokens (the
  projected last-layer tokens' cosine to the query, thresholded on the 7x7 grid), with model calls per hit.
- **audio** (the tiny CLAP of the tests, 2 s clips pasted into 12 s of noise): span error for window
  searches of several settings and for the spectrogram match evidence uses.

    PYTHONPATH=. python bench/evidence.py [--images 40] [--repeats 5] [--placements 40] [--skip-cost]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import CACHE, interleaved, load_average, machine_record  # noqa: E402
from embed import build_clip_b32, make_jpegs  # noqa: E402
from rerank import build_blip_itm_base  # noqa: E402

TARGET_EXTRA = 0.25
QUERY = "a photo of a red car parked in the street"


def cost_section(args: argparse.Namespace) -> None:
    from llama_index.core.schema import ImageNode

    from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore, MultimodalReranker
    from llama_index_mm_st.search import SearchRequest, search

    clip_dir = build_clip_b32(CACHE / "clip-vit-b32-random")
    blip_dir = build_blip_itm_base(CACHE / "blip-itm-base-random-std002")
    photos = make_jpegs(CACHE / "photos", args.images)
    embedding = MultimodalEmbedding(str(clip_dir), device="cpu", precision="fp32", backend="torch")
    reranker = MultimodalReranker(str(blip_dir), top_n=5, device="cpu", precision="fp32", backend="torch")
    store = MultimodalQdrantStore("evidence_bench", path=tempfile.mkdtemp(prefix="mmst-evidence-bench-"))
    store.add(embedding([ImageNode(image_path=str(path)) for path in photos]))
    plain = SearchRequest(text=QUERY, top_k=5)
    with_evidence = SearchRequest(text=QUERY, top_k=5, evidence=True)
    calls: dict[str, int] = {"crops": 0}
    original = embedding.embed

    def counting(inputs: Any, modality: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("role", "document") == "document":
            calls["crops"] += len(inputs)
        return original(inputs, modality, **kwargs)

    object.__setattr__(embedding, "embed", counting)
    search(store, embedding, reranker, with_evidence)
    crops_per_search = calls["crops"]
    object.__setattr__(embedding, "embed", original)
    # The most a text query's crop search embeds: the coarse windows and one refinement round for every hit
    # (random weights often find the whole image best, which stops the refinement; the whole image's vector
    # comes from the store).
    from llama_index_mm_st.evidence import CropSettings
    from llama_index_mm_st.evidence.crops import coarse_boxes, crop

    settings = CropSettings()
    with Image.open(photos[0]) as first:
        aspect = first.size[0] / first.size[1]
    windows = coarse_boxes(1.0, aspect, settings.scales, settings.stride, settings.centre)[1:]  # the store has the whole
    per_hit = len(windows) + 6 * settings.refine_rounds
    boxes = (windows * 3)[:per_hit]

    def worst_case() -> None:
        crops = []
        for path in photos[:5]:
            with Image.open(path) as image:
                image = image.convert("RGB")
                crops += [crop(image, box) for box in boxes]
        embedding.embed(crops, "image")

    times = interleaved({"search, reranked (BLIP), top 5": lambda: search(store, embedding, reranker, plain),
                         "the same with evidence=True": lambda: search(store, embedding, reranker, with_evidence),
                         f"the most crops evidence embeds: 5 x {per_hit}": worst_case},
                        args.repeats)
    store.close()
    (base_label, base), (ev_label, ev), (_, worst) = times.items()
    print(f"\n## cost: evidence for the top 5 on a reranked search ({args.images} images, CLIP ViT-B/32 + BLIP "
          f"ITM-base, random weights, fp32, torch)")
    print(f"  evidence embedded {crops_per_search} crops per search ({crops_per_search / 5:.1f} per hit)")
    for label, seconds in times.items():
        print(f"  {label:<40} best {min(seconds):.3f} s   median {statistics.median(seconds):.3f} s")
    best, median = min(ev) / min(base) - 1, statistics.median(ev) / statistics.median(base) - 1
    verdict = "within" if best <= TARGET_EXTRA else "OVER"
    print(f"  evidence adds {best:+.1%} (best of {args.repeats}), {median:+.1%} (median): {verdict} the "
          f"{TARGET_EXTRA:.0%} target")
    bound = min(worst) / min(base)
    print(f"  at most (every hit refined, 5 x {per_hit} crops decoded, cut and embedded): {bound:+.1%} of the search "
          f"(best), {statistics.median(worst) / statistics.median(base):+.1%} (median): "
          f"{'within' if bound <= TARGET_EXTRA else 'OVER'} the target")


# ---------------------------------------------------------------- tokens


def openai_tokens(width: int, height: int) -> int:
    """GPT-4o high detail: fit in 2048x2048, then the short side to 768; 85 + 170 per 512 px tile."""
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def anthropic_tokens(width: int, height: int) -> int:
    """Claude: fit the long edge in 1568 px, then width x height / 750."""
    scale = min(1.0, 1568 / max(width, height))
    return math.ceil(width * scale * height * scale / 750)


def tokens_section(args: argparse.Namespace) -> None:
    from llama_index.core.schema import NodeWithScore, QueryBundle

    from llama_index_mm_st import ImageReader, MultimodalEmbedding
    from llama_index_mm_st.answer import for_answer
    from llama_index_mm_st.evidence import attach
    from tests.fixtures.evidence import pdf_with_lines
    from tests.fixtures.models import build_tiny_clip

    folder = Path(tempfile.mkdtemp(prefix="mmst-evidence-pages-"))
    words = ["zanzibar", "quokka", "impeller", "turbine", "marmalade", "obsidian"]
    filler = ["Quarterly report of the northern region", "Revenue grew in every month of the quarter",
              "Costs were flat and staffing unchanged", "Next review is planned for the spring"] * 5
    pages = []
    for number, word in enumerate(words):
        lines = list(filler)
        lines[3 + 2 * number] = f"The {word} account closed with a surplus this year"
        pages += ImageReader().load_data([pdf_with_lines(folder / f"page{number}.pdf", lines)])
    tiny = build_tiny_clip(folder / "clip")
    embedding = MultimodalEmbedding(str(tiny), device="cpu", precision="fp32")  # words locate lines: any model
    totals = {"whole": [0, 0], "crops": [0, 0]}
    for page, word in zip(pages, words):
        hit = [NodeWithScore(node=page, score=1.0)]
        found = attach.attach_evidence(hit, embedding, QueryBundle(query_str=word))
        for label, node in (("whole", for_answer(page, context_px=None)), ("crops", for_answer(found[0].node))):
            blocks = node.get_content_blocks()
            for block in blocks:
                if block.__class__.__name__ == "ImageBlock":
                    with Image.open(block.resolve_image()) as image:
                        totals[label][0] += openai_tokens(*image.size)
                        totals[label][1] += anthropic_tokens(*image.size)
    with Image.open(pages[0].image_resource.path) as image:
        size = image.size
    print(f"\n## tokens: the answer's image tokens for {len(pages)} PDF pages ({size[0]}x{size[1]} px at 150 dpi), one "
          "matched line each")
    print(f"  {'':<34} {'GPT-4o tiles':>14} {'Claude w*h/750':>15}")
    for label, name in (("whole", "whole pages"), ("crops", "line crops + 256 px page")):
        print(f"  {name:<34} {totals[label][0]:>14} {totals[label][1]:>15}")
    print(f"  crops / whole: {totals['crops'][0] / totals['whole'][0]:.2f} (GPT-4o), "
          f"{totals['crops'][1] / totals['whole'][1]:.2f} (Claude)")


# ---------------------------------------------------------------- regions


def placements(count: int) -> list[tuple[Image.Image, Image.Image, tuple[float, float, float, float]]]:
    from tests.fixtures.images import synthetic_image

    rng = np.random.default_rng(0)
    cases = []
    for i in range(count):
        width, height = int(rng.integers(240, 640)), int(rng.integers(240, 640))
        scene = synthetic_image(1000 + i, (width, height))
        query_w = int(min(width * 0.9, rng.uniform(0.25, 0.6) * width))
        query_h = int(min(height * 0.9, query_w / rng.uniform(0.6, 1.6)))
        query = synthetic_image(2000 + i, (query_w, query_h))
        x, y = int(rng.integers(0, width - query_w)), int(rng.integers(0, height - query_h))
        scene.paste(query, (x, y))
        cases.append((scene, query, (x / width, y / height, (x + query_w) / width, (y + query_h) / height)))
    return cases


def patch_token_box(model: Any, processor: Any, image: Image.Image, query: np.ndarray) -> tuple[float, float, float, float]:
    """The vision tower's last-layer patch tokens, projected like the pooled token, cosine to the query on the
    patch grid; the box around the cells within half the map's range of its best cell (the processor's
    centre crop mapped back to the image)."""
    inputs = processor(images=image, return_tensors="pt")
    with torch.inference_mode():
        hidden = model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state[0, 1:]
        tokens = model.visual_projection(model.vision_model.post_layernorm(hidden)).numpy()
    side = int(round(math.sqrt(len(tokens))))
    scores = (tokens @ query) / (np.linalg.norm(tokens, axis=1) * np.linalg.norm(query) + 1e-12)
    grid = scores.reshape(side, side)
    cut = grid.max() - 0.5 * (grid.max() - grid.min())
    rows, cols = np.nonzero(grid >= cut)
    width, height = image.size
    short = min(width, height)  # the centre crop CLIP's processor takes, in image pixels
    left, top = (width - short) / 2, (height - short) / 2
    x0, x1 = left + cols.min() / side * short, left + (cols.max() + 1) / side * short
    y0, y1 = top + rows.min() / side * short, top + (rows.max() + 1) / side * short
    return (x0 / width, y0 / height, x1 / width, y1 / height)


def regions_section(args: argparse.Namespace) -> None:
    from transformers import CLIPModel, CLIPProcessor

    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.evidence import CropSettings
    from llama_index_mm_st.evidence.boxes import iou
    from llama_index_mm_st.evidence.crops import search_regions

    clip_dir = build_clip_b32(CACHE / "clip-vit-b32-random")
    embedding = MultimodalEmbedding(str(clip_dir), device="cpu", precision="fp32", backend="torch")
    model, processor = CLIPModel.from_pretrained(str(clip_dir)).eval(), CLIPProcessor.from_pretrained(str(clip_dir))
    cases = placements(args.placements)

    def run(search: Any) -> tuple[Any, int]:
        crops, count = next(search), 0
        try:
            while True:
                count += len(crops)
                crops = search.send(np.asarray(embedding.embed(crops, "image").embeddings))
        except StopIteration as done:
            return done.value, count

    print(f"\n## regions: a picture pasted into a larger one ({len(cases)} random placements, 25-60% of the width, "
          "CLIP ViT-B/32 random weights)")
    print(f"  {'method':<52} {'IoU>=0.5':>9} {'mean IoU':>9} {'calls/hit':>10} {'ms/hit':>8}")
    variants = {
        "crops: windows side by side + centre, 1 refine (text)": (lambda s, q, v: search_regions(s, v, None), True),
        "crops: windows overlapping by half, 2 refine rounds": (
            lambda s, q, v: search_regions(s, v, None, CropSettings(stride=0.5, centre=False, refine_rounds=2)), True),
        "crops: 2 scales (0.5, 0.3) overlapping, 2 refine": (
            lambda s, q, v: search_regions(s, v, None, CropSettings(scales=(0.5, 0.3), stride=0.5, refine_rounds=2)),
            True),
        "pixel-match proposals + model scores (ours, example)": (lambda s, q, v: search_regions(s, v, q), True),
        "patch tokens (last layer, projected), 7x7 grid": (None, False),
    }
    for label, (make, crops) in variants.items():
        ious, calls = [], 0
        start = time.perf_counter()
        for scene, query, target in cases:
            vector = np.asarray(embedding.embed([query], "image", role="query").embeddings[0])
            if crops:
                found, count = run(make(scene, query, vector))
                box, calls = found[0][0], calls + count
            else:
                box, calls = patch_token_box(model, processor, scene, vector), calls + 1
            ious.append(iou(box, target))
        elapsed = (time.perf_counter() - start) / len(cases) * 1000
        values = np.array(ious)
        print(f"  {label:<52} {np.mean(values >= 0.5):>9.0%} {values.mean():>9.2f} {calls / len(cases):>10.1f} "
              f"{elapsed:>8.0f}")


# ---------------------------------------------------------------- audio


def audio_section(args: argparse.Namespace) -> None:
    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.evidence import WindowSettings
    from llama_index_mm_st.evidence.audio_template import match_offsets
    from llama_index_mm_st.evidence.spans import search_spans
    from llama_index_mm_st.media import resample
    from tests.fixtures import media
    from tests.fixtures.audio_models import build_tiny_clap
    from tests.fixtures.evidence import recording_with_clip

    clap_dir = CACHE / "tiny-clap"
    if not (clap_dir / "config.json").exists():
        build_tiny_clap(clap_dir)
    clap = MultimodalEmbedding(str(clap_dir), device="cpu", precision="fp32")
    rate = 16_000
    clip = resample(media.chirp(seconds=2.0), media.RATE, rate)
    query = np.asarray(clap.embed([{"array": clip, "sampling_rate": rate}], "audio", role="query").embeddings[0])
    offsets = np.random.default_rng(1).uniform(0.1, 9.9, args.placements)

    def run(search: Any, track: np.ndarray) -> tuple[Any, int]:
        count = 0
        try:
            windows = next(search)
            while True:
                count += len(windows)
                inputs = [{"array": track[int(a * rate):int(b * rate)], "sampling_rate": rate} for a, b in windows]
                windows = search.send(np.asarray(clap.embed(inputs, "audio").embeddings))
        except StopIteration as done:
            return done.value, count

    print(f"\n## audio: a 2 s clip pasted into 12 s of noise ({len(offsets)} offsets, tiny CLAP random weights)")
    print(f"  {'method':<48} {'err<=0.5s':>9} {'max err':>8} {'windows/hit':>12}")
    settings = {"windows, stride 1/2, refine best 1": WindowSettings(beam=1),
                "windows, stride 1/2, refine best 2 (ours, text)": WindowSettings(beam=2),
                "windows, stride 1/4, refine best 1": WindowSettings(beam=1, stride=0.25),
                "windows, stride 1/4, refine best 2": WindowSettings(beam=2, stride=0.25)}
    for label, setting in [*settings.items(), ("spectrogram match + model score (ours, example)", None)]:
        errors, calls = [], 0
        for i, at in enumerate(offsets):
            track = recording_with_clip(clip, rate, 12.0, at, seed=i)
            proposals = match_offsets(track, clip, rate) if setting is None else ()
            spans, count = run(search_spans(12.0, 2.0, query, setting or WindowSettings(), proposals), track)
            calls += count
            errors.append(max(abs(spans[0][0] - at), abs(spans[0][1] - at - 2.0)))
        values = np.array(errors)
        print(f"  {label:<48} {np.mean(values <= 0.5):>9.0%} {values.max():>7.2f}s {calls / len(offsets):>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--placements", type=int, default=40)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--sections", default="cost,tokens,regions,audio")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"# bench/evidence.py\n{machine_record()}\nload average: {load_average()}")
    sections = set(args.sections.split(",")) - ({"cost"} if args.skip_cost else set())
    for name, run in (("tokens", tokens_section), ("regions", regions_section), ("audio", audio_section),
                      ("cost", cost_section)):
        if name in sections:
            run(args)


if __name__ == "__main__":
    main()
