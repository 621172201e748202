"""RQ-VAE tokenizers: the model, gated training, the registry, tokens and sequences, the vocabulary."""
