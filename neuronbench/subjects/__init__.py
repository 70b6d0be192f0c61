"""neuronbench.subjects"""
