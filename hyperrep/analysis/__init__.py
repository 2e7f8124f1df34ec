"""Analysis of a zoo and its embeddings: projection and clusters, trajectories, baseline features, probes, report."""
