"""A byte-level BPE tokenizer shaped like SmolLM2's, trained on given lines of text.

Both tokenizers this project makes (the demo model's, from its dataset, and the offline
stand-in for SmolLM2's) have this shape: a byte-level pre-tokenizer without a prefix
space, `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` at ids 0-2, the 256 byte symbols, then
merges; and the parity fixture's tokenizer_config.json beside it. Upstream's tokenizer
builder then appends the 66 extra tokens after this base vocabulary.
"""
from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# what the fixture's tokenizer_config.json says, as transformers 5 writes it
TOKENIZER_CONFIG = {
    "backend": "tokenizers",
    "bos_token": "<|im_start|>",
    "eos_token": "<|im_end|>",
    "model_max_length": 1000000000000000019884624838656,
    "tokenizer_class": "TokenizersBackend",
    "unk_token": "<|endoftext|>",
}


def train_bpe(lines: list[str], vocab_size: int):
    """A `tokenizers.Tokenizer` of at most `vocab_size` tokens trained on `lines` (fewer
    when the lines run out of pairs to merge)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1", special_tokens=[])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def write_tokenizer_config(out_dir, **extra) -> None:
    """tokenizer_config.json as the fixture has it, plus `extra` keys."""
    text = json.dumps({**TOKENIZER_CONFIG, **extra}, indent=2) + "\n"
    (Path(out_dir) / "tokenizer_config.json").write_text(text)
