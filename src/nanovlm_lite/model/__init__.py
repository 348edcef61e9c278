"""nanoVLM as upstream defines it, built on transformers' SigLIP and Llama modules."""
