"""Starting runs from the CLI as ordinary Dagster runs of the code location, and the processes that own them."""
