"""Simulators: predict activations from an explanation (logprob, generation, lexical, embedding,
and the trained reader and cross-encoder)."""
