"""Models: architecture x encoder factory, extra heads, siamese wrapper for pairs."""
