"""Pictures of pipelines and runs: ASCII summaries and PNG status images."""
