"""The search's candidates, checked and priced, enqueued cheapest first (search/worker.py)."""
import json
import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from nanovlm_lite import load
from nanovlm_lite.data.aokvqa import load_questions
from nanovlm_lite.search.space import parse_search
from nanovlm_lite.search.worker import plan_search

torch.set_num_threads(snakemake.threads)
out = Path(snakemake.output.plan)
engine = load(snakemake.input.model, tokenizer=snakemake.params.tokenizer, device="cpu")
plan = plan_search(engine, load_questions(snakemake.input.data), parse_search(snakemake.params.search),
                   snakemake.params.threshold, out.parent / "journal.log",
                   prompt_template=snakemake.params.prompt_template)
print(f"{len(plan['candidates'])} candidates ({len(plan['invalid'])} invalid), rungs {plan['rungs']}")
for c in plan["candidates"]:
    print(f"  {c['gflops_estimate']:.4f} GFLOPs  {c['name']}")
out.write_text(json.dumps(plan, indent=1))
