"""Services: what the assets do with the working store, without Dagster."""
