"""Model zoos: architectures as data, the hyperparameter space, population training and the zoo store."""
