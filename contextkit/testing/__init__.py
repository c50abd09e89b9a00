"""Test helpers that ship with contextkit: a local DeepSeek-compatible server, real data."""
