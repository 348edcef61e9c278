"""Build the offline demo dataset: easy-vqa recast, or generated scenes (A-OKVQA's schema)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

out = Path(snakemake.output.train).parent
params = snakemake.params
if params.build == "scenes":
    from nanovlm_lite.data.scenes import build_scenes_dataset
    paths = build_scenes_dataset(out, train_images=params.train_images,
                                 val_images=params.val_images, seed=params.seed)
else:
    from nanovlm_lite.data.easyvqa import build_demo_dataset
    paths = build_demo_dataset(out, max_train=params.max_train, max_val=params.max_val,
                               seed=params.seed, yes_no_keep=params.yes_no_keep)
print({split: str(path) for split, path in paths.items()})
