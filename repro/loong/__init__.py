"""Loong benchmark: answer extraction, rule and LLM judges, an OpenAI-compatible client, metrics."""
