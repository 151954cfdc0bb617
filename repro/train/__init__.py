"""Training building blocks shared by every recipe: log-probs, batching, schedules, checkpoints."""
