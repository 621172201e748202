"""RQ-VAE tokenizers: training, registry aliases, tokenization (issue 5, in progress)."""
