"""Developer tools, not part of the pipeline's runtime: the benchmark and the seeded demo-data generator."""
