"""Logging and metrics: infrastructure every layer above the domain may use (workflows, activities,
the Temporal plumbing, the operator's tools), so it imports none of them."""
