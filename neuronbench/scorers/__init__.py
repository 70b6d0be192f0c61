"""neuronbench.scorers"""
