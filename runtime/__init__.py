"""AgentFlow's workflow runtime: spec models, validation, templates and rules. Imports no Django."""
