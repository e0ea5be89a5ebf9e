"""rtdnas (seed 002): real-time constrained differentiable search with genetic path selection."""
