"""hyperrep: hyper-representations of model zoos.

Build a zoo of small trained networks, train a self-supervised autoencoder on their weights, and use the
embeddings to explore, probe and sample new networks.
"""

__version__ = "0.1.0"
