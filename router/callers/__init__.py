"""Callers: who sent a request (identity), and what they may spend (budgets, rate limits)."""
