"""Network weights as data: neuron tokens, per-layer normalisation and function-preserving augmentation."""
