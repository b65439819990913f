"""Checkpoint files: safe reading of every form, canonicalization, writing, inspection."""
