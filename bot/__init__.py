"""Turns retrieved passages into cited answers, and the thin front ends (CLI, chat, Discord)."""
