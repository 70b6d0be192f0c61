"""neuronbench.results"""
