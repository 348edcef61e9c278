"""The offline demo dataset: easy-VQA in the A-OKVQA schema."""
import collections

import pyarrow.parquet as pq
import pytest


from nanovlm_lite.data.aokvqa import REQUIRED_COLUMNS, load_questions  # noqa: E402
from nanovlm_lite.data.easyvqa import answer_kinds, build_demo_dataset  # noqa: E402

N_TRAIN, N_VAL = 300, 120


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_dataset(tmp_path_factory.mktemp("demo"), max_train=N_TRAIN, max_val=N_VAL)


def test_answer_kinds_cover_the_package():
    kinds = answer_kinds()
    assert len(kinds) == 13
    assert collections.Counter(kinds.values()) == {"color": 8, "shape": 3, "yes/no": 2}
    assert kinds["gray"] == "color"  # the package's spelling


def test_schema_and_sizes(demo):
    assert set(demo) == {"train", "val"}
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        names = pq.read_schema(demo[split]).names
        assert set(REQUIRED_COLUMNS) | {"rationales", "question_type"} <= set(names)
        qs = load_questions(demo[split])
        assert len(qs) == n
        assert qs[0].question_id == f"easyvqa-{split}-000000"
        assert len({q.question_id for q in qs}) == n


def test_choices_per_type_and_answer(demo):
    expected = {"color": 4, "shape": 3, "yes/no": 2}
    seen = collections.Counter()
    for q in load_questions(demo["train"]) + load_questions(demo["val"]):
        kind = q.extra["question_type"]
        seen[kind] += 1
        assert len(q.choices) == len(set(q.choices)) == expected[kind], q
        answer = q.direct_answers[0]
        assert q.direct_answers == [answer] * 10
        assert q.choices[q.correct_choice_idx] == answer
        assert all(answer_kinds()[c] == kind for c in q.choices)
        assert q.difficult_direct_answer is False and q.extra["rationales"] == []
    assert set(seen) == set(expected)  # all three kinds occur in the sample
    # the shuffle moves the answer around
    positions = {q.correct_choice_idx for q in load_questions(demo["train"])}
    assert positions == {0, 1, 2, 3}


def test_images_decode(demo):
    q = load_questions(demo["val"], max_samples=1)[0]
    img = q.image()
    assert img.size == (64, 64) and img.mode == "RGB"


def test_deterministic_and_prefix_stable(demo, tmp_path):
    again = build_demo_dataset(tmp_path / "a", max_train=N_TRAIN, max_val=N_VAL)
    for split in ("train", "val"):
        assert pq.read_table(again[split]).equals(pq.read_table(demo[split]))
        assert again[split].read_bytes() == demo[split].read_bytes()
    shorter = build_demo_dataset(tmp_path / "b", max_train=50, max_val=10)
    assert pq.read_table(shorter["train"]).equals(pq.read_table(demo["train"]).slice(0, 50))
    other = build_demo_dataset(tmp_path / "c", max_train=N_TRAIN, max_val=N_VAL, seed=1)
    a = [q.choices for q in load_questions(demo["train"])]
    b = [q.choices for q in load_questions(other["train"])]
    assert a != b  # another seed, other shuffles and distractors


def test_rejects_negative_limits(tmp_path):
    with pytest.raises(ValueError, match="max_train"):
        build_demo_dataset(tmp_path, max_train=-1)


def test_yes_no_keep_thins_only_the_training_yes_no_questions(demo, tmp_path):
    thin = build_demo_dataset(tmp_path, max_train=N_TRAIN, max_val=N_VAL, yes_no_keep=0.3)
    full = {q.question_id: q for q in load_questions(demo["train"])}
    kept = load_questions(thin["train"])
    kept_ids = {q.question_id for q in kept}
    types = lambda qs: [q.extra["question_type"] for q in qs]  # noqa: E731
    # every colour and shape question stays, and each kept question is unchanged
    assert {i for i, q in full.items() if q.extra["question_type"] != "yes/no"} <= kept_ids
    assert all(q.choices == full[q.question_id].choices for q in kept)
    n_yes_no, n_kept = types(full.values()).count("yes/no"), types(kept).count("yes/no")
    assert 0.15 * n_yes_no < n_kept < 0.45 * n_yes_no
    # the evaluation split is never thinned
    assert pq.read_table(thin["val"]).equals(pq.read_table(demo["val"]))
    # and the same questions are kept again
    again = build_demo_dataset(tmp_path / "again", max_train=N_TRAIN, max_val=N_VAL,
                               yes_no_keep=0.3)
    assert again["train"].read_bytes() == thin["train"].read_bytes()


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.5])
def test_rejects_a_yes_no_share_outside_0_1(tmp_path, keep):
    with pytest.raises(ValueError, match="yes_no_keep"):
        build_demo_dataset(tmp_path, yes_no_keep=keep)
