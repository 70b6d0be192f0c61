"""Simulators: predict activations from an explanation (logprob, generation, lexical, embedding)."""
