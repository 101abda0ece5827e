"""Where an example clip occurs inside a longer recording: its spectrogram, correlated over time.

The audio counterpart of ``template.py``: for a query by audio example, the strongest evidence is the
example itself, wherever it was pasted. Both are reduced to log band energies (``BANDS`` bands,
``HOP_S`` frames, at ``RATE``) and the example's pattern is correlated (normalised, every band at
once) at every offset, by FFT. Magnitudes ignore phase, so a re-encoded or resampled copy still
matches; a whole hour is 180 000 frames, milliseconds of work. The window search then scores the
proposed span with the model.
"""

from __future__ import annotations

import numpy as np

from ..media import resample
from .template import fast_length

RATE = 8_000
FFT_SIZE = 256
HOP_S = 0.02
BANDS = 24


def band_energies(samples: np.ndarray, rate: int) -> np.ndarray:
    """(frames, BANDS) log energies of ``samples`` (mono, at ``rate``): a frame every ``HOP_S``."""
    wave = resample(np.asarray(samples, dtype=np.float32), rate, RATE) if rate != RATE else np.asarray(samples, np.float32)
    hop = int(RATE * HOP_S)
    if len(wave) < FFT_SIZE:
        wave = np.pad(wave, (0, FFT_SIZE - len(wave)))
    count = 1 + (len(wave) - FFT_SIZE) // hop
    index = np.arange(FFT_SIZE)[None, :] + hop * np.arange(count)[:, None]
    spectrum = np.abs(np.fft.rfft(wave[index] * np.hanning(FFT_SIZE), axis=1)) ** 2
    edges = np.unique(np.geomspace(2, spectrum.shape[1], BANDS + 1).astype(int))
    bands = np.add.reduceat(spectrum, edges[:-1], axis=1)[:, : len(edges) - 1]
    return np.log1p(bands / (bands.mean() + 1e-12))


def match_offsets(recording: np.ndarray, example: np.ndarray, rate: int, keep: int = 3) -> list[tuple[float, float]]:
    """(start_s, correlation -1..1) of the best matches of ``example`` in ``recording`` (both mono at
    ``rate``), best first, none within half the example's length of a better one."""
    long, short = band_energies(recording, rate), band_energies(example, rate)
    frames, width = len(short), short.shape[1]
    if frames > len(long):
        return []
    centred = short - short.mean()
    norm = float(np.sqrt((centred ** 2).sum()))
    if norm < 1e-9:
        return []
    size = fast_length(len(long) + frames - 1)
    correlation = np.fft.irfft((np.fft.rfft(long, size, axis=0) * np.fft.rfft(centred[::-1], size, axis=0)).sum(axis=1),
                               size)[frames - 1:len(long)]
    totals = np.pad(long.sum(axis=1), (1, 0)).cumsum()
    squares = np.pad((long ** 2).sum(axis=1), (1, 0)).cumsum()
    count = frames * width
    sums = totals[frames:] - totals[:-frames]
    variance = np.maximum(squares[frames:] - squares[:-frames] - sums * sums / count, 0.0)
    scores = np.where(variance > 1e-12, correlation / (np.sqrt(variance) * norm + 1e-12), 0.0)
    chosen: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if all(abs(int(index) - other) >= max(1, frames // 2) for other in chosen):
            chosen.append(int(index))
            if len(chosen) == keep:
                break
    return [(index * HOP_S, float(scores[index])) for index in chosen]
