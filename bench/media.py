"""Audio and video: embedding throughput, ours against sentence-transformers' own ``encode`` on the same
inputs, and what decoding costs per second of media.

Setup: full-size CLAP (``ClapConfig()`` defaults, the ``laion/clap-htsat-unfused`` architecture: HTSAT
audio tower, RoBERTa text tower) with random weights, WAV clips at 44.1 kHz on disk (the model reads
48 kHz: both sides resample). Video: Qwen3-VL with random weights; on a CPU a reduced configuration
(``--video-size small``: 4-layer vision tower, 4-layer text model), on a GPU ``--video-size 2b`` (the
Qwen3-VL-Embedding-2B layout). Synthetic H.264 clips (640x360, 30 fps) on disk.

Peers: sentence-transformers ``encode`` on the file paths for audio (it decodes with soundfile and soxr);
for video it can't decode a path without torchcodec (not installable here), so its input is every
frame decoded by PyAV with the stream's metadata (it samples frames itself), and its time includes
that decode, as a user's would.

    python bench/media.py [--device cpu] [--precision auto] [--clips 16] [--videos 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, add_device_args, best_of, header, machine_record  # noqa: E402

AUDIO_RATE = 44_100


def build_clap(path: Path) -> Path:
    """CLAP with transformers' default (full-size) config and random weights; a BPE tokenizer trained here."""
    if (path / "config.json").exists():
        return path
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    words = [w for w in open(__file__).read().split() if w.isalpha()]
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(2000)]
    tokenizer = RobertaTokenizer().train_new_from_iterator(iter(corpus), vocab_size=4000)
    tokenizer.model_max_length = 512
    torch.manual_seed(0)
    model = ClapModel(ClapConfig()).eval()
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")  # the unfused model's settings
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    model.save_pretrained(path)
    return path


def build_qwen3_vl(path: Path, size: str) -> Path:
    """A Qwen3-VL embedder with random weights: "small" (CPU-sized) or "2b" (the 2B layout)."""
    if (path / "config.json").exists():
        return path
    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import (Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLModel, Qwen3VLProcessor,
                              Qwen3VLVideoProcessor)

    from tests.fixtures import qwen_vl

    tokenizer = qwen_vl.qwen_tokenizer(seed=2)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in qwen_vl.SPECIAL_TOKENS}
    if size == "2b":
        text = dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                    num_key_value_heads=8, head_dim=128)
        vision = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, out_hidden_size=2048,
                      deepstack_visual_indexes=[5, 11, 17])
    else:
        text = dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                    num_key_value_heads=4, head_dim=64)
        vision = dict(depth=4, hidden_size=512, intermediate_size=2048, num_heads=8, out_hidden_size=512,
                      deepstack_visual_indexes=[1])
    config = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                                          "mrope_section": [24, 20, 20] if size == "2b" else [12, 10, 10],
                                          "mrope_interleaved": True},
                         pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], **text),
        vision_config=dict(patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                           **vision),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        architectures=["Qwen3VLModel"], tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    Qwen3VLModel(config).eval().save_pretrained(path)
    size_dict = {"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32}
    common = dict(patch_size=16, merge_size=2, temporal_patch_size=2)
    Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(size=size_dict, **common),
                     video_processor=Qwen3VLVideoProcessor(size=size_dict, **common),
                     tokenizer=tokenizer, chat_template=qwen_vl.EMBEDDER_CHAT_TEMPLATE).save_pretrained(path)
    transformer = qwen_vl._vlm_transformer(path, "feature-extraction")
    model = SentenceTransformer(modules=[transformer, Pooling(text["hidden_size"], pooling_mode="lasttoken"),
                                         Normalize()], device="cpu", prompts=qwen_vl.EMBEDDER_PROMPTS)
    model.save(str(path))
    return path


def write_wavs(folder: Path, count: int, seconds: float) -> list[Path]:
    import av

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:03d}_{seconds:g}s.wav"
        if not path.exists():
            t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
            wave = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
            with av.open(str(path), "w") as container:
                stream = container.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="mono")
                frame = av.AudioFrame.from_ndarray(wave[None, :].astype(np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, 0, Fraction(1, AUDIO_RATE)
                for packet in list(stream.encode(frame)) + list(stream.encode(None)):
                    container.mux(packet)
        paths.append(path)
    return paths


def write_videos(folder: Path, count: int, seconds: float, size: tuple[int, int] = (640, 360), fps: int = 30) -> list[Path]:
    import av

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    for i in range(count):
        path = folder / f"video_{i:03d}_{seconds:g}s.mp4"
        if not path.exists():
            with av.open(str(path), "w") as container:
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                for f in range(int(seconds * fps)):
                    frame = np.stack([(x + 3 * f + 40 * i) % 256, (y + 2 * f) % 256, (x + y + f) % 256], -1)
                    video_frame = av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")
                    for packet in stream.encode(video_frame):
                        container.mux(packet)
                for packet in stream.encode(None):
                    container.mux(packet)
        paths.append(path)
    return paths


def decode_costs(wavs: list[Path], videos: list[Path], seconds_audio: float, seconds_video: float) -> None:
    """Milliseconds of CPU wall time per second of media, one thread."""
    from llama_index_mm_st.media import load_audio, load_video

    per_audio = best_of(lambda: [load_audio(p, "a", 48_000) for p in wavs[:4]], 3) / (4 * seconds_audio)
    same_rate = best_of(lambda: [load_audio(p, "a", AUDIO_RATE) for p in wavs[:4]], 3) / (4 * seconds_audio)
    every = best_of(lambda: load_video(videos[0], "v"), 2) / seconds_video
    sampled = best_of(lambda: load_video(videos[0], "v", lambda info: range(0, info.frames or 1, 15)), 2) / seconds_video
    print(f"decode, per second of media: WAV 44.1 kHz -> 48 kHz mono {1000 * per_audio:.2f} ms "
          f"(no resampling {1000 * same_rate:.2f} ms); H.264 640x360 30 fps, every frame to RGB "
          f"{1000 * every:.1f} ms, 2 frames/s to RGB {1000 * sampled:.1f} ms")


def bench_audio(args: argparse.Namespace, wavs: list[Path], seconds: float) -> None:
    from sentence_transformers import SentenceTransformer

    from llama_index_mm_st import MultimodalEmbedding

    path = build_clap(CACHE / "clap_full")
    ours = MultimodalEmbedding(str(path), device=args.device, precision=args.precision, batch_size=8)
    fp32 = MultimodalEmbedding(str(path), device=args.device, precision="fp32", batch_size=8)
    peer = SentenceTransformer(str(path), device=args.device)
    inputs = [str(p) for p in wavs]
    t_ours = best_of(lambda: ours.embed(inputs, "audio"), args.repeats)
    t_fp32 = best_of(lambda: fp32.embed(inputs, "audio"), args.repeats)
    t_peer = best_of(lambda: peer.encode(inputs, batch_size=8, normalize_embeddings=True), args.repeats)
    a = np.array(fp32.embed(inputs, "audio").embeddings)
    b = peer.encode(inputs, batch_size=8, normalize_embeddings=True)
    d = np.array(ours.embed(inputs, "audio").embeddings)
    n = len(inputs)
    print(f"audio, CLAP full-size, {n} clips of {seconds:g} s: ours ({ours.precision}) {n / t_ours:.2f} clips/s "
          f"({n * seconds / t_ours:.1f} s of audio/s), {t_peer / t_ours:.2f}x sentence-transformers "
          f"({n / t_peer:.2f} clips/s); ours fp32 {n / t_fp32:.2f} clips/s ({t_peer / t_fp32:.2f}x)")
    print(f"  parity: ours fp32 vs sentence-transformers max |diff| {np.abs(a - b).max():.2e}; "
          f"ours {ours.precision} vs fp32 min cosine {(d * a).sum(1).min():.5f}")


def bench_video(args: argparse.Namespace, videos: list[Path], seconds: float) -> None:
    from sentence_transformers import SentenceTransformer

    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.media import load_video

    path = build_qwen3_vl(CACHE / f"qwen3_vl_{args.video_size}", args.video_size)
    ours = MultimodalEmbedding(str(path), device=args.device, precision=args.precision, batch_size=2)
    fp32 = MultimodalEmbedding(str(path), device=args.device, precision="fp32", batch_size=2)
    peer = SentenceTransformer(str(path), device=args.device)

    def peer_run() -> np.ndarray:
        clips = [load_video(p, p.name) for p in videos]
        return peer.encode([{"array": c.frames, "video_metadata": c.metadata()} for c in clips], batch_size=2,
                           normalize_embeddings=True)

    t_ours = best_of(lambda: ours.embed(videos, "video"), args.repeats)
    t_fp32 = best_of(lambda: fp32.embed(videos, "video"), args.repeats)
    t_peer = best_of(peer_run, args.repeats)
    t_decode = best_of(lambda: [load_video(p, p.name) for p in videos], 1, warmup=0)
    a, b = np.array(fp32.embed(videos, "video").embeddings), peer_run()
    total = len(videos) * seconds
    print(f"video, Qwen3-VL {args.video_size}, {len(videos)} clips of {seconds:g} s (640x360, 30 fps): ours "
          f"({ours.precision}) {total / t_ours:.2f} s of video/s, {t_peer / t_ours:.2f}x sentence-transformers "
          f"given every frame ({total / t_peer:.2f} s/s, of which decoding every frame {t_decode:.2f} s of "
          f"{t_peer:.2f} s); ours fp32 {total / t_fp32:.2f} s/s ({t_peer / t_fp32:.2f}x)")
    print(f"  parity: ours fp32 vs sentence-transformers max |diff| {np.abs(a - b).max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_args(parser)
    parser.add_argument("--clips", type=int, default=16, help="audio clips")
    parser.add_argument("--audio-seconds", type=float, default=5.0)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--video-seconds", type=float, default=4.0)
    parser.add_argument("--video-size", choices=["small", "2b"], default=None,
                        help="Qwen3-VL size (default: 2b on CUDA, small elsewhere)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", choices=["audio", "video"], action="append", default=[])
    args = parser.parse_args()
    args.video_size = args.video_size or ("2b" if args.device.startswith("cuda") else "small")
    torch.set_num_threads(args.threads)
    print(header("media", args.device, args.precision))
    print("# " + machine_record())
    wavs = write_wavs(CACHE / "media" / "audio", args.clips, args.audio_seconds)
    videos = write_videos(CACHE / "media" / "video", args.videos, args.video_seconds)
    decode_costs(wavs, videos, args.audio_seconds, args.video_seconds)
    start = time.perf_counter()
    if "audio" not in args.skip:
        bench_audio(args, wavs, args.audio_seconds)
    if "video" not in args.skip:
        bench_video(args, videos, args.video_seconds)
    print(f"# total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
