"""Our engine computes what upstream nanoVLM computes, on the fixture made with upstream."""
import numpy as np
import pytest
from PIL import Image

import nanovlm_lite


@pytest.fixture(scope="module")
def engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


def _prompt(engine, fixture_dir, case):
    return engine.prepare(Image.open(fixture_dir / case["image"]), case["text"])


def test_every_case_matches_upstream(engine, fixture_dir, fixture_cases):
    for case in fixture_cases:
        prompt = _prompt(engine, fixture_dir, case)
        assert prompt.input_ids == case["input_ids"]
        assert list(prompt.image.grid) == case["grid"]
        assert prompt.n_tiles == case["n_tiles"]
        assert prompt.image_tokens == case["n_image_tokens"]
        tiles = np.load(fixture_dir / case["tiles"])
        assert np.abs(prompt.image.tiles.numpy() - tiles).max() < 1e-5
        logits = engine.next_token_logits([prompt])[0].numpy()
        assert np.abs(logits - np.load(fixture_dir / case["logits"])).max() < 1e-4
        tokens, step_logits = engine.generate([prompt], max_new_tokens=6, stop_at_eos=False,
                                              return_logits=True)
        assert tokens[0] == case["greedy_tokens"]
        expected = np.load(fixture_dir / case["decode_logits"])
        assert np.abs(step_logits[0].numpy() - expected).max() < 1e-4


def test_left_padded_batch_matches_one_at_a_time(engine, fixture_dir, fixture_cases):
    prompts = [_prompt(engine, fixture_dir, c) for c in fixture_cases]
    assert len({p.sequence_length for p in prompts}) > 1  # the batch really is padded
    batched = engine.next_token_logits(prompts).numpy()
    for i, prompt in enumerate(prompts):
        alone = engine.next_token_logits([prompt])[0].numpy()
        assert np.abs(batched[i] - alone).max() < 1e-4
    tokens, step_logits = engine.generate(prompts, max_new_tokens=6, stop_at_eos=False,
                                          return_logits=True)
    for i, case in enumerate(fixture_cases):
        assert tokens[i] == case["greedy_tokens"]
        expected = np.load(fixture_dir / case["decode_logits"])
        assert np.abs(step_logits[i].numpy() - expected).max() < 1e-4
