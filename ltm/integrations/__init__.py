"""Bridges from other training libraries to a run's `ltm.core` context.

Each integration is its own module and imports its library there, so `import ltm` never pulls one in:
`from ltm.integrations.transformers import LtmCallback` needs the optional extra `ltm[hf]`.
"""
