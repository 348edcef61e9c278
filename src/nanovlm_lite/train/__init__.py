"""Training: the offline demo model from scratch, and fine-tuning recipes that win back
accuracy after FLOP cuts.

- recipes.py    named recipes (data) + `train_demo_model` and `finetune`, the pipeline's calls
- trainer.py    `TrainConfig` and the loop (AdamW, warm-up + cosine, accumulation, bf16
                autocast on CUDA, validation, resumable `trainer_state.pt`)
- objectives.py what the loss is on: the answer word (cloze), the letter, the direct answer
- trainable.py  what trains: all | projector | lm | vit-frozen | lora | learned-pool
- data.py       batches of images x their questions, drawn as a pure function of the step
- forward.py    the engine's forward with gradients, and the loss
- validate.py   letter / cloze accuracy by question type while training
- demo.py, tokenizer.py   the demo architecture and its byte-level BPE tokenizer
- cli.py        `nanovlm-lite train`
"""
