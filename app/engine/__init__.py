"""The real-time pipeline engine: frame sources, preprocessing, inference stages, statistics, replay."""
