"""seg_pipeline: versioned customer segments from raw orders and profiles."""

__version__ = "0.3.0"
