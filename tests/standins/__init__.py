"""Local stand-ins for what the real study fetches (GitHub's nanoVLM, the model hub, the
dataset hub), built by project code into a temporary directory: `make rehearse` runs the
real config against them, and tests use the pieces."""
