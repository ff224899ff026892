"""The reference bank of bank-api.md (``python -m simulator``) and its statement generator."""
