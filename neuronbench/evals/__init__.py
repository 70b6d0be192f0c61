"""neuronbench.evals"""
