"""FLOP-reduction knobs that act on tensors: image-token reduction and FastV."""
