"""One search worker: races candidates from the shared journal until none is worth it."""
import json
import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite import load
from nanovlm_lite.data.aokvqa import load_questions
from nanovlm_lite.search.worker import Worker

torch.set_num_threads(snakemake.threads)
plan = json.loads(Path(snakemake.input.plan).read_text())
engine = load(snakemake.input.model, tokenizer=snakemake.params.tokenizer,
              device=snakemake.params.device)
worker = Worker(engine, load_questions(snakemake.input.data), plan,
                Path(snakemake.input.plan).parent / "trials", snakemake.params.budget,
                prompt_template=snakemake.params.prompt_template,
                batch_size=snakemake.params.batch_size, progress=True)
done = worker.run()
print(done)
Path(snakemake.output[0]).write_text(json.dumps(done, indent=1))
