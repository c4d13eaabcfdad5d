"""Converters from other products' workflow exports (Dify DSL, Flowise) to a WorkflowSpec.

Plain Python over parsed documents: no Django here. Each converter returns a `Conversion`, the
spec and a report of what mapped and what did not, and why.
"""
