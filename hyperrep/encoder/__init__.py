"""The transformer autoencoder over neuron tokens: model, losses, training and embedding of a whole zoo."""
