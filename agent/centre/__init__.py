"""The registration centre as the pipeline sees it: one small port, and its adapters."""
