"""Tenant-written templates (Jinja) and router rules (CEL), evaluated within operator caps.

A spec is hostile input, so no evaluation may run longer, loop more or build more than the caps
in `limits.SandboxLimits` allow, whatever it contains. Jinja templates run in Jinja's immutable
sandbox with every loop, call and value-building operation routed through a per-render meter
(`meter`, `environment`, `filters`, `bounds`): sizes are worked out from the operands before a
value is built, loops and calls count steps, and the clock is read against the deadline the
runtime set (`limits.evaluation_deadline`). CEL rules cannot be interrupted (the binding holds the
GIL and has no cost limit), so a rule's comprehensions are costed before it runs and counted
while it runs through a callback the rule is rewritten to call (`cel_cost`, `expressions`).
"""
