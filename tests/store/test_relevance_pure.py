"""Relevance fusion's pure parts: background moments, the prior, fusion by best vector plus words, and
the bottom-k samples the statistics come from (no engine here; the store tests run them end to end)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from llama_index_mm_st.ids import point_id
from llama_index_mm_st.relevance import sigmoid
from llama_index_mm_st.store.background import Samples, VectorSample, point_hash
from llama_index_mm_st.store.relevance import Background, Prior, RelevanceModel, fuse, word_scores


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_moments_are_the_mean_and_spread_of_the_cosines() -> None:
    rng = np.random.default_rng(0)
    x = unit_rows(rng.normal(size=(400, 24)) + 2.0 * rng.normal(size=24))
    q = rng.normal(size=24)
    cos = x @ (q / np.linalg.norm(q))
    mean, sd = Background.of(x, prior_points=0).moments(q)
    assert mean == pytest.approx(cos.mean()) and sd == pytest.approx(cos.std(ddof=1))
    leaning = Background.of(x[:3]).moments(q)  # three points lean on random directions: mean near 0
    assert abs(leaning[0]) < abs(float(np.mean(x[:3] @ (q / np.linalg.norm(q)))))


def test_a_low_rank_background_keeps_most_of_the_spread() -> None:
    """Above ``rank`` directions the rest is spread evenly: close, not exact, on a decaying spectrum."""
    rng = np.random.default_rng(1)
    scales = 1.0 / np.arange(1, 257)
    x = unit_rows(rng.normal(size=(3000, 256)) * scales + 0.3)
    q = rng.normal(size=256)
    exact = Background.of(x, rank=256, prior_points=0).moments(q)
    approx = Background.of(x, rank=64, prior_points=0).moments(q)
    assert approx[0] == pytest.approx(exact[0]) and approx[1] == pytest.approx(exact[1], rel=0.1)


def test_the_prior_is_logistic_in_z_and_demands_more_of_larger_collections() -> None:
    prior = Prior(signal=5.0, expected=1.5)
    assert float(sigmoid(prior.logit(0.0, 1000))) < 1e-6  # the background's middle is not relevant
    mid_small = (12.5 + np.log(100 / 1.5)) / 5
    mid_large = (12.5 + np.log(100_000 / 1.5)) / 5
    assert float(sigmoid(prior.logit(mid_small, 100))) == pytest.approx(0.5)
    assert float(sigmoid(prior.logit(mid_large, 100_000))) == pytest.approx(0.5)
    assert mid_large > mid_small  # the top of a larger background reaches higher


def gapped_backgrounds(rng: np.random.Generator, dim: int = 32) -> tuple[dict[str, Background], np.ndarray, dict]:
    """A text cone (cosines around 0.6 to a text query) and an image cone (around 0.1)."""
    cone_t, cone_i, topic = unit_rows(rng.normal(size=(3, dim)))
    texts = unit_rows(2.0 * cone_t + rng.normal(size=(500, dim)) / np.sqrt(dim))
    images = unit_rows(2.0 * cone_i + 0.5 * cone_t + rng.normal(size=(500, dim)) / np.sqrt(dim))
    query = unit_rows((2.0 * cone_t + 1.0 * topic)[None])[0]
    return {"text": Background.of(texts), "image": Background.of(images)}, query, {"texts": texts, "images": images}


def test_equal_standing_means_equal_relevance_across_the_modality_gap() -> None:
    """A text and an image each the same number of standard deviations above their own background get
    the same relevance, though their raw cosines differ by the gap."""
    rng = np.random.default_rng(2)
    backgrounds, query, _ = gapped_backgrounds(rng)
    cos = {}
    for name, background in backgrounds.items():
        mean, sd = background.moments(query)
        cos[name] = mean + 4.5 * sd
    assert cos["text"] - cos["image"] > 0.2  # the gap
    fused = fuse(query, {"text": {"t": cos["text"]}, "image": {"i": cos["image"]}}, {}, backgrounds)
    assert fused[0].relevance == pytest.approx(fused[1].relevance, abs=1e-9)
    assert {s.vector for s in fused} == {"text", "image"} and fused[0].z == pytest.approx(4.5)


def test_a_node_is_found_by_its_best_vector_and_counted_once() -> None:
    rng = np.random.default_rng(3)
    backgrounds, query, _ = gapped_backgrounds(rng)
    (mt, st), (mi, si) = backgrounds["text"].moments(query), backgrounds["image"].moments(query)
    # "page": useless words (z = 0) but pixels 5 sd up; "text": 4 sd up.
    dense = {"text": {"page": mt, "text": mt + 4 * st}, "image": {"page": mi + 5 * si}}
    fused = fuse(query, dense, {}, backgrounds)
    assert [s.id for s in fused] == ["page", "text"]
    assert fused[0].vector == "image" and len(fused) == 2


def test_words_reorder_but_do_not_bury_images() -> None:
    """The issue's hand-made case: 30 images and 30 texts of equal standing (the i-th best of each equally
    far above its background), half of the texts holding the query's words. Words lift a text above an
    image of equal standing, never a weaker text above a clearly better image."""
    rng = np.random.default_rng(4)
    backgrounds, query, _ = gapped_backgrounds(rng)
    standings = np.linspace(6.0, 0.0, 30)
    dense: dict[str, dict[str, float]] = {"text": {}, "image": {}}
    for name in ("text", "image"):
        mean, sd = backgrounds[name].moments(query)
        for i, z in enumerate(standings):
            dense[name][f"{name}{i}"] = mean + z * sd
    bm25 = {f"text{i}": 3.0 for i in range(1, 30, 2)}  # every other text holds the words
    fused = fuse(query, dense, {"bm25": bm25}, backgrounds)
    top10 = [s.id for s in fused[:10]]
    # Dense mode's top 10 holds 5 images, RRF's hybrid 2 (the best image fell to rank 5); here words are
    # worth about two steps of standing, so the texts holding them move up two places, no further.
    assert sum(i.startswith("image") for i in top10) == 4
    assert top10.index("image0") <= 1
    assert top10.index("text1") < top10.index("image1")  # words break equal standing
    assert top10.index("image1") < top10.index("text5")  # but a clearly better image stays ahead


def test_word_scores_are_coverage_of_a_full_match_or_relative_to_the_best() -> None:
    lists = {"bm25": {"a": 4.0, "b": 1.0}, "learned": {"b": 2.0, "c": 1.0}}
    assert word_scores(lists, {}) == ({"a": 1.0, "b": 1.0, "c": 0.5}, {})
    evidence, coverage = word_scores(lists, {"bm25": 8.0})  # a full match of the query's words scores 8
    assert coverage == {"a": 0.5, "b": 0.125} and evidence == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert word_scores({"bm25": {}}, {}) == ({}, {})


def test_idf_is_estimated_from_the_sampled_documents() -> None:
    from llama_index_mm_st.store.relevance import WordBackground

    words = WordBackground.of([[1, 2], [1, 3], [1], [4]], count=400)  # term 1 in 3 of 4 sampled documents
    assert words.count == 400 and words.sampled == 4 and words.frequency[1] == 3
    assert words.idf(1) == pytest.approx(np.log(1 + (400 - 300 + 0.5) / 300.5))
    assert words.idf(99) == pytest.approx(np.log(1 + 400.5 / 0.5))  # unseen: as rare as can be
    assert words.full_match([1, 99], [1.0, 1.0]) == pytest.approx(words.idf(1) + words.idf(99))


def test_a_rare_exact_word_finds_a_text_its_vector_misses() -> None:
    """Words alone: a hit covering the query's informative words is relevant however far its vector is;
    one holding a common word only is not."""
    rng = np.random.default_rng(11)
    backgrounds, query, _ = gapped_backgrounds(rng)
    mean, sd = backgrounds["text"].moments(query)
    dense = {"text": {"far": mean - 2 * sd, "near": mean + 3 * sd, "common": mean}}
    fused = {s.id: s for s in fuse(query, dense, {"bm25": {"far": 9.5, "common": 1.0}}, backgrounds,
                                   full={"bm25": 10.0})}
    assert fused["far"].relevance > 0.2 and fused["far"].vector is None  # a candidate, not yet an answer
    assert fused["common"].relevance < 0.01


def test_ties_are_ordered_by_id_and_limit_cuts() -> None:
    rng = np.random.default_rng(5)
    backgrounds, query, _ = gapped_backgrounds(rng)
    dense = {"text": {"b": 0.5, "a": 0.5, "c": 0.1}}
    fused = fuse(query, dense, {}, backgrounds, limit=2)
    assert [s.id for s in fused] == ["a", "b"]


def test_a_fitted_map_replaces_the_prior_for_its_vector_only() -> None:
    from llama_index_mm_st.relevance import LogisticMap

    rng = np.random.default_rng(6)
    backgrounds, query, _ = gapped_backgrounds(rng)
    model = RelevanceModel(fitted={"image": LogisticMap((0.0, 0.0), 0.0)})  # image: always 0.5
    (mt, st), (mi, si) = backgrounds["text"].moments(query), backgrounds["image"].moments(query)
    fused = {s.id: s.relevance for s in fuse(query, {"text": {"t": mt + 9 * st}, "image": {"i": mi + 9 * si}},
                                              {}, backgrounds, model)}
    assert fused["i"] == pytest.approx(0.5) and fused["t"] > 0.99
    assert RelevanceModel.from_dict(model.to_dict()) == model


# ------------------------------------------------------------------ bottom-k samples


def ids(n: int, prefix: str = "n") -> list[str]:
    return [point_id(f"{prefix}{i}") for i in range(n)]


def test_point_hashes_are_uniform_in_the_unit_interval() -> None:
    hashes = np.array([point_hash(i) for i in ids(4000)])
    assert hashes.min() >= 0 and hashes.max() < 1
    assert np.histogram(hashes, bins=4, range=(0, 1))[0].min() > 900


def test_a_sample_is_the_same_whatever_the_order_of_writes() -> None:
    points = ids(500)
    a, b = VectorSample(capacity=50), VectorSample(capacity=50)
    for p in points:
        a.offer(p, point_hash(p))
    for p in reversed(points):
        b.offer(p, point_hash(p))
    assert set(a.members) == set(b.members) and a.tau == b.tau
    assert set(a.members) == {p for p in points if point_hash(p) < a.tau}  # exactly the points below tau
    assert 25 < len(a.members) <= 100 and a.tau in (1 / 4, 1 / 8, 1 / 16)
    assert a.count == pytest.approx(500, rel=0.35)


def test_deleting_and_re_adding_keep_the_sample_a_function_of_the_points() -> None:
    points = ids(300)
    sample = VectorSample(capacity=40)
    for p in points:
        sample.offer(p, point_hash(p))
    before = set(sample.members)
    gone = sorted(before)[:10]
    sample.discard(gone)
    assert not set(gone) & set(sample.members) and len(sample.members) == len(before) - 10
    for p in gone:
        sample.offer(p, point_hash(p))
    assert set(sample.members) == before


def vectors_of(table: dict[str, np.ndarray], reads: list[int]):  # type: ignore[no-untyped-def]
    """A fetch over a dict of vectors that counts the ids it is asked for."""
    def fetch(point_ids, name):  # type: ignore[no-untyped-def]
        reads.append(len(point_ids))
        return {i: table[i] for i in point_ids if i in table}
    return fetch


def test_a_small_collection_is_sampled_whole_and_counted_exactly() -> None:
    samples = Samples(capacity=100)
    table = {}
    for i, p in enumerate(ids(30)):
        table[p] = np.array([1.0, float(i)])
        samples.offer(p, {"text", "image"} if i % 3 == 0 else {"text"})
    backgrounds = samples.backgrounds(vectors_of(table, []))
    assert backgrounds["text"].count == 30 and backgrounds["image"].count == 10


def test_a_point_rewritten_without_a_vector_leaves_that_sample() -> None:
    samples = Samples(capacity=10)
    p = point_id("x")
    samples.offer(p, {"text", "image"})
    samples.offer(p, {"text"})
    assert p not in samples.sample("image").members and p in samples.sample("text").members


def test_vectors_are_read_only_at_a_refit_and_only_once() -> None:
    rng = np.random.default_rng(9)
    table = {p: rng.normal(size=4) for p in ids(200) + ids(3, "late") + ids(20, "more")}
    reads: list[int] = []
    fetch = vectors_of(table, reads)
    sample = VectorSample(capacity=1000)
    for p in ids(200):
        sample.offer(p, point_hash(p))
    assert reads == []  # writes read nothing
    first = sample.background("text", fetch)
    assert reads == [200] and first.count == 200
    for p in ids(3, "late"):  # 3 of 203: under the refit share, the fit stands (its count follows)
        sample.offer(p, point_hash(p))
    assert sample.background("text", fetch).mean is first.mean and sample.background("text", fetch).count == 203
    for p in ids(20, "more"):
        sample.offer(p, point_hash(p))
    assert sample.background("text", fetch).mean is not first.mean
    assert reads == [200, 23]  # only the members not read before


def test_a_member_gone_from_the_collection_leaves_the_sample_at_the_refit() -> None:
    table = {p: np.array([1.0, 0.0]) for p in ids(5)}
    sample = VectorSample(capacity=10)
    for p in ids(6):
        sample.offer(p, point_hash(p))
    background = sample.background("text", vectors_of(table, []))
    assert background.count == 5 and len(sample.members) == 5


def test_a_sample_round_trips_through_its_record() -> None:
    samples = Samples(capacity=20)
    for p in ids(100):
        samples.offer(p, {"text"})
    again = Samples.from_dict(samples.to_dict(), capacity=20)
    assert again.vectors["text"].members == samples.vectors["text"].members
    assert again.vectors["text"].tau == samples.vectors["text"].tau
    with pytest.raises(ValueError, match="tau"):
        Samples.from_dict({"text": {"tau": 2, "ids": []}})


def test_order_of_fusion_inputs_does_not_matter() -> None:
    rng = np.random.default_rng(10)
    backgrounds, query, _ = gapped_backgrounds(rng)
    dense = {"text": {f"t{i}": float(rng.uniform(0.5, 0.8)) for i in range(8)},
             "image": {f"i{i}": float(rng.uniform(0.0, 0.3)) for i in range(8)}}
    sparse = {"bm25": {f"t{i}": float(rng.uniform(0, 5)) for i in range(4)}}
    results = set()
    for order in itertools.permutations(["text", "image"]):
        reordered = {name: dict(reversed(list(dense[name].items()))) for name in order}
        results.add(tuple((s.id, round(s.relevance, 12)) for s in fuse(query, reordered, sparse, backgrounds)))
    assert len(results) == 1
