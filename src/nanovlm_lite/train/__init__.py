"""Training: the offline demo model from scratch, and fine-tuning recipes that win back
accuracy after FLOP cuts. `recipes.py` names the recipes; `trainer.py` runs them."""
