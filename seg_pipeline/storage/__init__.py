"""Adapters to what the pipeline reads and writes: the landing files, the working store, model files, the analyst
file and its marts, and the audience exports. The only modules that speak SQL."""
