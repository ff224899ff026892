"""The reference bank of bank-api.md and its statement generator.

python -m bankrecon.sources.refbank.simulator
"""
