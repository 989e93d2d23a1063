"""Training and evaluation tools for SMT-Net (losses, schedules, metrics, evaluation)."""
